"""Hostile node files, one table: each case either CONVERGES or is REFUSED, never half-done.

Every case starts a real node (tests/testbed), puts files on it the way an admin could have
left them, runs the real CLI (`run --host NODE --yes -o json`) and checks the result on the
node itself, independently of the tool:

CONVERGED  exit 0, status "changed"; only the files the case names changed (everything else
           under /etc/docker, /etc/sysconfig, /etc/default/docker*, /etc/sysctl.d,
           /etc/sysctl.conf and /run/sysctl.d is untouched: content, mode, owner, inode,
           mtime), each changed file has a backup beside it, keeps its mode and owner, and
           keeps every part the tool does not own (other JSON keys and ulimit entries; every
           line but the OPTIONS/DOCKER_OPTS assignment, and the other flags in order; every
           line but the vm.max_map_count one). dockerd really asks runc for the ulimits,
           vm.max_map_count is max(old, 262144) now and at least that at boot (procps'
           own `sysctl --system` on the node, and on the systemd kinds systemd-sysctl too),
           and a second run is "unchanged" with the same dockerd.
REFUSED    exit 1, status "refused", the error names the file and what to fix; not one
           byte, mode, owner, inode or mtime changed there (nor under /opt/trains) and no file
           appeared; vm.max_map_count and the dockerd pid are the same; `check` exits 1 and
           prints the same problem on a "refused" line.

A file dockerd rejects at start is written after the node started (`later`): dockerd reads
daemon.json only at start, so that is "someone edited the file while docker ran".

The node kinds (test ids `KIND-CASE`): `sysvinit` (TiniNode: Debian 12, sysvinit, Docker
20.10), `systemd` (SystemdNode: Debian 12, systemd 252, Docker 20.10) and `debian13`
(Debian13Node: systemd 257, Docker 26, which runs `dockerd --validate` before any write). The
RHEL layout (`rhel=True`) is the sysvinit node's rhel option there, and on the systemd kinds
docker.service with test_rhel_systemd.py's drop-in (EnvironmentFile=-/etc/sysconfig/docker,
$OPTIONS; rhel_layout.py). /etc/default/docker is read on every kind (the init script, or
docker.service's EnvironmentFile= as DOCKER_OPTS). A case plays on every kind unless its
`kinds` says otherwise; what differs on a kind is in its `on` (kind -> fields), never a looser
assertion. Of the table's 55 cases, 54 run on each kind:

- sysconfig-double-quotes (sysvinit only): it plays the sysvinit node's own RHEL file, whose
  RHEL-only flag `--signature-verification=false` that node's init drops; the upstream dockerd
  of the systemd kinds refuses the flag and would not start. The other sysconfig cases give
  their own file and run everywhere.
- sysconfig-that-docker-service-does-not-read (systemd kinds only): a stray sysconfig file
  that docker.service names no EnvironmentFile= for; an init script (the sysvinit node) may
  source any file, so the tool takes one there as read.

Per-kind differences (`on`): daemon-json-not-utf8 is written after start on debian13 (Docker
26 does not start with a daemon.json that is not UTF-8; 20.10 does).
sysconfig-comments-export-and-other-variables is REFUSED on the systemd kinds: docker.service
reads the file as a systemd EnvironmentFile=, which ignores its `export OPTIONS='...'` line
(formats/env_file.py), so the tool refuses to edit a line that dockerd never gets; a shell (the
sysvinit node's init script) sources it, and there it converges. Everything else, the error
texts included, is the same on all kinds.

Each case plays on its own node in a background thread, PARALLEL at a time, in table order,
the kinds of a case side by side (the nodes mostly wait for sshd, dockerd and docker
restarts; their starts and stops take turns, under BED_LOCK); the test of a case asserts on
what was observed there (`Seen`).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pytest

from tests.testbed import Debian13Node, SystemdNode, TestNode, TiniNode

from .cli import trains_nodeprep
from .limits import WRITTEN_NOFILE, WRITTEN_NOFILE_FLAG
from .rhel_layout import RHEL_DROPIN, RHEL_DROPIN_PATH

CONVERGED = "converged"
REFUSED = "refused"

DJ = "/etc/docker/daemon.json"
SC = "/etc/sysconfig/docker"
DD = "/etc/default/docker"
TRAINS = "/etc/sysctl.d/99-trains.conf"
SYSCTL_CONF = "/etc/sysctl.conf"

# The node kinds (test ids as in test_safety.py): Debian 12 with sysvinit (tini) and Docker 20.10,
# Debian 12 with systemd 252 and Docker 20.10, Debian 13 with systemd 257 and Docker 26.
SYSVINIT, SYSTEMD, DEBIAN13 = "sysvinit", "systemd", "debian13"
KINDS: dict[str, type[TestNode]] = {
    SYSVINIT: TiniNode,
    SYSTEMD: SystemdNode,
    DEBIAN13: Debian13Node,
}
ALL_KINDS = tuple(KINDS)

PARALLEL = 4  # nodes at once: they mostly wait (sshd, dockerd, docker restarts)
BED_LOCK = threading.Lock()  # the bed's node list and ssh client files are not thread-safe

MIN_MAP_COUNT = 262144
KERNEL_DEFAULT_MAP_COUNT = 65530
NOFILE = (1024, 65536)
UNLIMITED = (-1, -1)
WANT = {"nofile": NOFILE, "memlock": UNLIMITED}

# Everything the tool could write (its files, backups, temp files) and its neighbours.
SNAPSHOT_ROOTS = (
    "/etc/docker",
    "/etc/sysconfig",
    "/etc/default/docker*",
    "/etc/default/.docker*",
    "/etc/sysctl.d",
    "/etc/sysctl.conf*",
    "/etc/.sysctl.conf*",
    "/run/sysctl.d",
    "/opt/trains",  # trains-server's directories: the tool makes them too, never on a refused node
)
SERVER_DIRS = "/opt/trains"  # what the tool creates there is tested elsewhere
# Split where the script's lines pass 100 columns; joined, its bytes are the same.
SNAPSHOT_SCRIPT = (
    r"""
import base64, glob, json, os, stat, sys
out = {}
def add(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode)"""
    r""" else "file" if stat.S_ISREG(st.st_mode) else "other"
    entry = {"type": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,"""
    r""" "ino": st.st_ino, "mtime": st.st_mtime_ns}
    if kind == "link":
        entry["target"] = os.readlink(path)
    if kind == "file":
        with open(path, "rb") as f:
            entry["content"] = base64.b64encode(f.read()).decode()
    out[path] = entry
    if kind == "dir":
        for name in sorted(os.listdir(path)):
            add(os.path.join(path, name))
for root in sys.argv[1:]:
    for path in sorted(glob.glob(root)):
        add(path)
print(json.dumps(out))
"""
)
BACKUP = re.compile(r"^(?P<path>.+)\.\d{8}T\d{6}\.\d{6}Z(?P<absent>\.absent)?\.bak$")

Content = str | bytes | Callable[[bytes], bytes]  # a callable gets the node's current content


@dataclass(frozen=True)
class Case:
    id: str
    outcome: str  # CONVERGED or REFUSED
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # in place before dockerd starts
    later: Mapping[str, Content] = field(default_factory=dict)  # written once the node runs
    restart_docker: bool = False  # restart docker after `later`, so that it runs with those files
    setup: str = ""  # shell, last: symlinks, directories, chmod, chown
    docker: bool = True  # dockerd running when the tool comes
    rhel: bool = False
    max_map_count: int = KERNEL_DEFAULT_MAP_COUNT
    # REFUSED: substrings of the error (the file, the problem, the fix)
    error: tuple[str, ...] = ()
    # CONVERGED: the files whose content changes or that appear (besides backups); all others stay
    changes: tuple[str, ...] = ()
    exact: Mapping[str, Content] = field(
        default_factory=dict
    )  # file -> exact content after the run
    ulimits: Mapping | None = None  # the exact "default-ulimits" object of the changed JSON file
    nofile: tuple[int, int] = NOFILE  # RLIMIT_NOFILE that docker asks for afterwards
    kinds: tuple[str, ...] = ALL_KINDS  # the node kinds it plays on (why not all: docstring)
    # kind -> the fields whose expected value differs on that kind (the outcome included)
    on: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.kinds and set(self.kinds) <= set(KINDS), self.kinds
        assert set(self.on) <= set(self.kinds), f"{self.id}: overrides for kinds it skips"
        names = {f.name for f in fields(self)} - {"id", "kinds", "on"}
        for kind, override in self.on.items():
            assert override and set(override) <= names, f"{self.id}: {kind}: {sorted(override)}"

    def on_kind(self, kind: str) -> Case:
        """The case as it plays on that kind: its per-kind fields applied."""
        assert kind in self.kinds, (self.id, kind)
        return replace(self, **self.on.get(kind, {}))


def json_error_at(text: str) -> str:
    """Where Python's json module (which the tool uses) puts a syntax error,
    e.g. "line 3 column 1"."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return f"line {err.lineno} column {err.colno}"
    raise AssertionError(f"valid JSON: {text!r}")


def entry(name: str | None, soft: int, hard: int) -> dict:
    return ({"Name": name} if name else {}) | {"Soft": soft, "Hard": hard}


def daemon_json(config: object, indent: int | str | None = 4) -> str:
    return json.dumps(config, indent=indent) + "\n"


ADDED_NOFILE = entry("nofile", *NOFILE)
ADDED_MEMLOCK = entry("memlock", *UNLIMITED)
FLAGS = "--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"
# Where docker sets no nofile and runs, its containers inherit containerd's: the minimum is
# raised to that (never lower; tests/integration/limits.py). Stopped: the playbook's minimum.
RAISED_NOFILE = entry("nofile", *WRITTEN_NOFILE)
RAISED_FLAGS = f"--default-ulimit {WRITTEN_NOFILE_FLAG} --default-ulimit memlock=-1:-1"
NOT_UTF8 = b'{"labels": ["site=K\xf6ln"]}\n'
TRAILING_COMMA = '{\n    "log-level": "warn",\n}\n'

SYSCONFIG_COMMENTS = (
    "# /etc/sysconfig/docker, edited by hand\n"
    '# OPTIONS="--this-is-only-a-comment"\n'
    '#OPTIONS="--old --flags"\n'
    "DOCKER_CERT_PATH=/etc/docker\n"
    "\n"
    "export OPTIONS='--log-level=warn --iptables=true'  # keep docker quiet\n"
    "  DOCKER_TMPDIR=/var/tmp\n"
    "LOGROTATE=false\n"
)

ES_SYSCTL = (
    "# elasticsearch\nvm.max_map_count = 65530\nvm.swappiness = 1\n"
    "vm/max_map_count = 131072 \nfs.file-max=100000\n"
)


def with_weak_default_nofile(text: bytes) -> bytes:
    """The bed's /etc/default/docker, with a weaker nofile flag between its runtime flags."""
    assert text.count(b' --default-runtime tnp"') == 1, text
    return text.replace(
        b' --default-runtime tnp"', b' --default-ulimit nofile=1024:4096 --default-runtime tnp"'
    )


def raised_default_nofile(text: bytes) -> bytes:
    return text.replace(
        b'nofile=1024:4096 --default-runtime tnp"',
        b'nofile=1024:65536 --default-runtime tnp --default-ulimit memlock=-1:-1"',
    )


def last_line_raised(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    """The file with its last line, old, replaced by new (Debian 13 has no /etc/sysctl.conf of
    its own: there the file is that line alone)."""

    def raised(text: bytes) -> bytes:
        assert text.endswith(old) and text[: -len(old)][-1:] in (b"", b"\n"), text
        return text[: -len(old)] + new

    return raised


def with_sysctl_conf_line(line: str) -> Callable[[bytes], bytes]:
    return lambda text: (
        text + (b"" if text.endswith(b"\n") or not text else b"\n") + line.encode() + b"\n"
    )


CASES = [
    # ------------------------------------------------------------ daemon.json dockerd would reject
    Case(
        "daemon-json-trailing-comma",
        REFUSED,
        later={DJ: TRAILING_COMMA},
        error=(f"{DJ}: invalid JSON at {json_error_at(TRAILING_COMMA)}", "fix the JSON"),
    ),  # 3.11: line 3 column 1
    Case(
        "daemon-json-missing-comma",
        REFUSED,
        later={DJ: '{\n    "log-level": "warn"\n    "debug": true\n}\n'},
        error=(f"{DJ}: invalid JSON at line 3 column 5", "fix the JSON"),
    ),
    Case(
        "daemon-json-empty-and-docker-down",
        REFUSED,
        docker=False,
        files={DJ: ""},
        error=(f"{DJ}: is empty", "write {} into it or delete it"),
    ),
    Case(
        "daemon-json-whitespace-only",
        REFUSED,
        later={DJ: " \n\t\n"},
        error=(f"{DJ}: is empty", "write {} into it or delete it"),
    ),
    Case(
        "daemon-json-slash-comment",
        REFUSED,
        later={DJ: '{\n  // managed by hand\n  "log-level": "warn"\n}\n'},
        error=(f"{DJ}: invalid JSON at line 2 column 3", "fix the JSON"),
    ),
    Case(
        "daemon-json-hash-comment",
        REFUSED,
        later={DJ: '# managed by puppet\n{"log-level": "warn"}\n'},
        error=(f"{DJ}: invalid JSON at line 1 column 1", "fix the JSON"),
    ),
    Case(
        "daemon-json-utf8-bom",
        REFUSED,
        later={DJ: b'\xef\xbb\xbf{"log-level": "warn"}\n'},
        error=(f"{DJ}: starts with a byte-order mark", "remove the BOM"),
    ),
    Case(
        "daemon-json-top-level-array",
        REFUSED,
        later={DJ: '[{"log-level": "warn"}]\n'},
        error=(f"{DJ}: top level is a JSON", "not an object", "make it a JSON object"),
    ),
    # dockerd 20.10 starts with a daemon.json of `null`; the tool refuses it, and must say "null"
    Case(
        "daemon-json-top-level-null",
        REFUSED,
        files={DJ: "null\n"},
        error=(f"{DJ}: top level is", "null", "make it a JSON object"),
    ),
    # dockerd 20.10 starts with it; Docker 26 does not ("encoding: invalid UTF-8"), so there it
    # is someone's edit while docker ran
    Case(
        "daemon-json-not-utf8",
        REFUSED,
        files={DJ: NOT_UTF8},
        error=(f"{DJ}: is not UTF-8 (byte 19)", "save it as UTF-8"),
        on={DEBIAN13: {"files": {}, "later": {DJ: NOT_UTF8}}},
    ),
    Case(
        "daemon-json-is-a-directory",
        REFUSED,
        setup=f"mkdir {DJ} && echo '{{}}' > {DJ}/conf.json",
        error=(f"{DJ}: is a directory", "move it away"),
    ),
    # ----------------------------------------------------------- default-ulimits of the wrong shape
    Case(
        "default-ulimits-is-a-list",
        REFUSED,
        later={DJ: daemon_json({"default-ulimits": [entry("nofile", 1024, 65536)]})},
        error=(f"{DJ}: default-ulimits is a JSON", "not an object", '{"nofile": {"Name": "nofile"'),
    ),
    Case(
        "default-ulimits-hard-is-a-string",
        REFUSED,
        later={
            DJ: daemon_json(
                {"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": "65536"}}}
            )
        },
        error=(DJ, "default-ulimits.nofile.hard", "not an integer", "use a whole number"),
    ),
    # dockerd starts with soft > hard; every container start would then fail (setrlimit EINVAL)
    Case(
        "default-ulimits-soft-above-hard",
        REFUSED,
        files={DJ: daemon_json({"default-ulimits": {"nofile": entry("nofile", 70000, 65536)}})},
        error=(DJ, "ulimit nofile has soft 70000 above hard 65536", "lower soft or raise hard"),
    ),
    # -------------------------------------------------------- default-ulimits dockerd reads: merged
    Case(
        "default-ulimits-null",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        files={DJ: daemon_json({"log-level": "warn", "default-ulimits": None})},
        changes=(DJ, TRAINS),
        ulimits={"nofile": RAISED_NOFILE, "memlock": ADDED_MEMLOCK},
    ),
    Case(
        "default-ulimits-lower-case-keys",
        CONVERGED,
        files={
            DJ: daemon_json(
                {"default-ulimits": {"nofile": {"name": "nofile", "soft": 1024, "hard": 4096}}},
                indent=2,
            )
        },
        changes=(DJ, TRAINS),
        ulimits={
            "nofile": {"name": "nofile", "soft": 1024, "hard": 65536},
            "memlock": ADDED_MEMLOCK,
        },
    ),
    Case(
        "default-ulimits-mixed-case-keys",
        CONVERGED,
        files={
            DJ: daemon_json(
                {"default-ulimits": {"nofile": {"Name": "nofile", "soft": 512, "hard": 4096}}}
            )
        },
        changes=(DJ, TRAINS),
        ulimits={
            "nofile": {"Name": "nofile", "soft": 1024, "hard": 65536},
            "memlock": ADDED_MEMLOCK,
        },
    ),
    Case(
        "default-ulimits-entry-key-is-not-its-name",
        CONVERGED,
        files={DJ: daemon_json({"default-ulimits": {"files": entry("nofile", 1024, 4096)}})},
        changes=(DJ, TRAINS),
        ulimits={"files": entry("nofile", 1024, 65536), "memlock": ADDED_MEMLOCK},
    ),
    Case(
        "default-ulimits-higher-nofile-and-nproc-kept",
        CONVERGED,
        files={
            DJ: daemon_json(
                {
                    "default-ulimits": {
                        "nofile": entry("nofile", 4096, 1048576),
                        "nproc": entry("nproc", 2048, 4096),
                    }
                }
            )
        },
        changes=(DJ, TRAINS),
        nofile=(4096, 1048576),
        ulimits={
            "nofile": entry("nofile", 4096, 1048576),
            "nproc": entry("nproc", 2048, 4096),
            "memlock": ADDED_MEMLOCK,
        },
    ),
    # dockerd starts with it, but every container fails: "wrong rlimit value: RLIMIT_: unknown"
    Case(
        "default-ulimits-entry-without-name",
        CONVERGED,
        files={DJ: daemon_json({"default-ulimits": {"nofile": entry(None, 1024, 65536)}})},
        changes=(DJ, TRAINS),
        ulimits={
            "nofile": {"Soft": 1024, "Hard": 65536, "Name": "nofile"},
            "memlock": ADDED_MEMLOCK,
        },
    ),
    # ------------------------------------------------------------ the rest of daemon.json: kept
    Case(
        "daemon-json-other-keys-and-nested-log-opts",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        changes=(DJ, TRAINS),
        files={
            DJ: daemon_json(
                {
                    "log-driver": "json-file",
                    "log-opts": {"max-size": "10m", "max-file": "3", "labels": "app,tier"},
                    "registry-mirrors": ["https://mirror.example.org"],
                    "live-restore": False,
                    "max-concurrent-downloads": 3,
                }
            )
        },
    ),
    # keys the tool knows nothing about (docker 20.10 takes them), tabs and CRLF line ends
    Case(
        "daemon-json-keys-the-tool-does-not-know",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        changes=(DJ, TRAINS),
        files={
            DJ: daemon_json(
                {
                    "features": {"buildkit": True},
                    "builder": {"gc": {"enabled": True, "defaultKeepStorage": "10GB"}},
                    "default-shm-size": "128M",
                },
                indent="\t",
            ).replace("\n", "\r\n")
        },
    ),
    Case(
        "daemon-json-symlink-to-another-file",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        changes=("/etc/docker/daemon-prod.json", TRAINS),
        later={"/etc/docker/daemon-prod.json": daemon_json({"log-level": "warn"})},
        setup=f"ln -s daemon-prod.json {DJ}",
        ulimits={"nofile": RAISED_NOFILE, "memlock": ADDED_MEMLOCK},
    ),
    # the link points nowhere yet (dockerd then runs without a config): the target is created
    Case(
        "daemon-json-dangling-symlink",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        setup=f"ln -s daemon-real.json {DJ}",
        changes=("/etc/docker/daemon-real.json", TRAINS),
        ulimits={"nofile": RAISED_NOFILE, "memlock": ADDED_MEMLOCK},
    ),
    # right file, but dockerd was started before someone wrote it: the limits never reach a
    # container
    Case(
        "daemon-json-right-but-dockerd-started-before-it",
        CONVERGED,
        changes=(TRAINS,),
        later={
            DJ: daemon_json({"default-ulimits": {"nofile": ADDED_NOFILE, "memlock": ADDED_MEMLOCK}})
        },
    ),
    Case(
        "daemon-json-mode-0600",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        files={DJ: daemon_json({"log-level": "warn"})},
        setup=f"chmod 0600 {DJ}",
        changes=(DJ, TRAINS),
    ),
    # --------------------------------------------------------- /etc/sysconfig/docker OPTIONS (RHEL)
    # the sysvinit node's own RHEL file, whose RHEL-only flag (--signature-verification) its init
    # drops: upstream dockerd on the systemd kinds refuses it, docker would not start
    Case(
        "sysconfig-double-quotes",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        kinds=(SYSVINIT,),
        changes=(SC, TRAINS),
        exact={
            SC: lambda before: before.replace(
                b'OPTIONS="--log-driver=journald --signature-verification=false"',
                b'OPTIONS="--log-driver=journald --signature-verification=false '
                + f'{RAISED_FLAGS}"'.encode(),
            )
        },
    ),
    Case(
        "sysconfig-single-quotes",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={SC: "# sysconfig\nOPTIONS='--log-level=warn'\nDOCKER_CERT_PATH=/etc/docker\n"},
        exact={
            SC: f"# sysconfig\nOPTIONS='--log-level=warn {RAISED_FLAGS}'\n"
            "DOCKER_CERT_PATH=/etc/docker\n"
        },
    ),
    Case(
        "sysconfig-unquoted-single-flag",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={SC: "OPTIONS=--log-level=warn\nDOCKER_CERT_PATH=/etc/docker\n"},
        exact={SC: f'OPTIONS="--log-level=warn {RAISED_FLAGS}"\nDOCKER_CERT_PATH=/etc/docker\n'},
    ),
    Case(
        "sysconfig-empty-options",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={SC: "# sysconfig\nOPTIONS=\nDOCKER_CERT_PATH=/etc/docker\n"},
        exact={SC: f'# sysconfig\nOPTIONS="{RAISED_FLAGS}"\nDOCKER_CERT_PATH=/etc/docker\n'},
    ),
    Case(
        "sysconfig-without-options-line",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={SC: "# sysconfig\nDOCKER_CERT_PATH=/etc/docker"},  # no newline at the end either
        exact={SC: f'# sysconfig\nDOCKER_CERT_PATH=/etc/docker\nOPTIONS="{RAISED_FLAGS}"\n'},
    ),
    # shell syntax: docker.service's EnvironmentFile= ignores an `export` line; the tool reads it
    # as a shell would, edits it and restarts docker, and verification fails (a defect of the
    # tool: not played on the systemd kinds until it is fixed, see the module docstring)
    Case(
        "sysconfig-comments-export-and-other-variables",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        # systemd's EnvironmentFile= ignores an `export OPTIONS=` line: docker.service never got
        # those flags, and editing that line would not bring the limits either
        on={
            kind: {
                "outcome": REFUSED,
                "error": (
                    SC,
                    "line 6 (export OPTIONS=...) is ignored by systemd",
                    "without 'export'",
                ),
            }
            for kind in (SYSTEMD, DEBIAN13)
        },
        changes=(SC, TRAINS),
        files={SC: SYSCONFIG_COMMENTS},
        exact={
            SC: SYSCONFIG_COMMENTS.replace(
                "'--log-level=warn --iptables=true'",
                f"'--log-level=warn --iptables=true {RAISED_FLAGS}'",
            )
        },
    ),
    # systemd reads the continued value as the shell does (and so does `dockerd --validate`'s
    # argv on Docker 26)
    Case(
        "sysconfig-multi-line-options",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={
            SC: '# sysconfig\nOPTIONS="--log-level=warn \\\n  --iptables=true"\n'
            "DOCKER_CERT_PATH=/etc/docker\n"
        },
        exact={
            SC: f'# sysconfig\nOPTIONS="--log-level=warn \\\n  --iptables=true {RAISED_FLAGS}"\n'
            "DOCKER_CERT_PATH=/etc/docker\n"
        },
    ),
    # a stray /etc/sysconfig/docker on a Debian systemd node: docker.service does not read it
    # (no EnvironmentFile= for it), so the limits go to daemon.json and the file stays
    Case(
        "sysconfig-that-docker-service-does-not-read",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        kinds=(SYSTEMD, DEBIAN13),
        files={SC: 'OPTIONS="--log-level=warn"\n'},
        changes=(DJ, TRAINS),
        ulimits={"nofile": RAISED_NOFILE, "memlock": ADDED_MEMLOCK},
    ),
    Case(
        "sysconfig-weaker-nofile-raised-in-place",
        CONVERGED,
        rhel=True,
        changes=(SC, TRAINS),
        files={
            SC: 'OPTIONS="--log-level=warn --default-ulimit nofile=1024:4096 --iptables=true"\n'
        },
        exact={
            SC: 'OPTIONS="--log-level=warn --default-ulimit nofile=1024:65536 --iptables=true'
            ' --default-ulimit memlock=-1:-1"\n'
        },
    ),
    Case(
        "sysconfig-options-twice-equals-form",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={
            SC: 'OPTIONS="--log-level=debug"\n'
            'OPTIONS="--log-level=warn --default-ulimit=memlock=65536:65536"\n'
        },
        exact={
            SC: 'OPTIONS="--log-level=debug"\n'
            'OPTIONS="--log-level=warn --default-ulimit=memlock=-1:-1'
            f' --default-ulimit {WRITTEN_NOFILE_FLAG}"\n'
        },
    ),
    Case(
        "sysconfig-owned-by-deploy-mode-0664",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={SC: 'OPTIONS="--log-level=warn"\n'},
        setup=f"chown deploy:deploy {SC} && chmod 0664 {SC}",
        exact={SC: f'OPTIONS="--log-level=warn {RAISED_FLAGS}"\n'},
    ),
    Case(
        "sysconfig-and-docker-stopped",
        CONVERGED,
        rhel=True,
        docker=False,
        changes=(SC, TRAINS),
        files={SC: 'OPTIONS="--log-level=warn"\n'},
        exact={SC: f'OPTIONS="--log-level=warn {FLAGS}"\n'},
    ),
    Case(
        "sysconfig-beside-daemon-json-without-ulimits",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        rhel=True,
        changes=(SC, TRAINS),
        files={SC: 'OPTIONS="--log-level=warn"\n', DJ: daemon_json({"debug": False})},
        exact={SC: f'OPTIONS="--log-level=warn {RAISED_FLAGS}"\n'},
    ),
    Case(
        "flagless-sysconfig-beside-daemon-json-with-ulimits",
        CONVERGED,
        rhel=True,
        changes=(DJ, TRAINS),
        files={
            SC: 'OPTIONS="--log-level=warn"\n',
            DJ: daemon_json({"default-ulimits": {"nofile": entry("nofile", 1024, 4096)}}),
        },
        ulimits={"nofile": ADDED_NOFILE, "memlock": ADDED_MEMLOCK},
    ),
    # right file, but dockerd runs without its flags (a restart was skipped): restarted, file
    # untouched
    Case(
        "sysconfig-right-but-dockerd-started-before-it",
        CONVERGED,
        rhel=True,
        changes=(TRAINS,),
        later={SC: f'OPTIONS="--log-level=warn {FLAGS}"\n'},
    ),
    Case(
        "sysconfig-unterminated-quote",
        REFUSED,
        rhel=True,
        later={
            SC: "# sysconfig\nDOCKER_CERT_PATH=/etc/docker\n"
            'OPTIONS="--log-level=warn --iptables=true\n# end\n'
        },
        error=(f'{SC}: unterminated " in OPTIONS at line 3', "close the quote"),
    ),
    Case(
        "ulimits-in-sysconfig-and-daemon-json",
        REFUSED,
        rhel=True,
        files={SC: 'OPTIONS="--log-level=warn --default-ulimit nofile=1024:4096"\n'},
        later={DJ: daemon_json({"default-ulimits": {"memlock": entry("memlock", -1, -1)}})},
        error=(f"set in {SC} and {DJ}", f"remove them from all but {SC}"),
    ),
    # ----------------------------------------------------- /etc/default/docker DOCKER_OPTS (Debian)
    Case(
        "default-docker-weaker-nofile-flag",
        CONVERGED,
        later={DD: with_weak_default_nofile},
        restart_docker=True,
        changes=(DD, TRAINS),
        exact={DD: raised_default_nofile},
    ),
    Case(
        "ulimits-in-default-docker-and-daemon-json",
        REFUSED,
        later={DD: with_weak_default_nofile},
        restart_docker=True,
        setup=f"printf '%s\\n'"
        f" '{json.dumps({'default-ulimits': {'nofile': entry('nofile', 1024, 65536)}})}' > {DJ}",
        error=(f"set in {DD} and {DJ}", f"remove them from all but {DD}"),
    ),
    # ------------------------------------------------------------ sysctl files
    Case(
        "sysctl-later-file-with-lower-value",
        CONVERGED,
        docker=False,
        changes=(DJ, TRAINS, "/etc/sysctl.d/99-zz-es.conf"),
        files={
            "/etc/sysctl.d/99-zz-es.conf": ES_SYSCTL
        },  # the last assignment wins: only that one is raised
        exact={
            "/etc/sysctl.d/99-zz-es.conf": ES_SYSCTL.replace(
                "vm/max_map_count = 131072 ", "vm/max_map_count = 262144 "
            )
        },
    ),
    Case(
        "sysctl-earlier-file-with-lower-value",
        CONVERGED,
        docker=False,
        changes=(DJ, TRAINS),
        files={"/etc/sysctl.d/10-es.conf": "vm.max_map_count=65530\n"},
    ),
    Case(
        "sysctl-99-trains-higher-with-comments",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        changes=(DJ,),
        files={
            TRAINS: "# ours, do not lower\n; old style comment\nvm.max_map_count = 524288\n# end\n"
        },
    ),
    Case(
        "sysctl-99-trains-lower-owned-by-deploy-mode-0600",
        CONVERGED,
        nofile=WRITTEN_NOFILE,
        changes=(DJ, TRAINS),
        files={TRAINS: "# ours\nvm.max_map_count=131072\n"},
        setup=f"chown deploy:deploy {TRAINS} && chmod 0600 {TRAINS}",
        exact={TRAINS: "# ours\nvm.max_map_count=262144\n"},
    ),
    Case(
        "sysctl-99-trains-conf-is-a-directory",
        REFUSED,
        setup=f"mkdir {TRAINS}",
        error=(f"{TRAINS}: is a directory", "move it away"),
    ),
    Case(
        "sysctl-runtime-already-1048576",
        CONVERGED,
        docker=False,
        max_map_count=1048576,
        changes=(DJ, TRAINS),
    ),
    # procps' `sysctl --system` reads /etc/sysctl.conf last (systemd-sysctl through 99-sysctl.conf)
    Case(
        "sysctl-conf-with-lower-value",
        CONVERGED,
        docker=False,
        changes=(DJ, TRAINS, SYSCTL_CONF),
        later={SYSCTL_CONF: with_sysctl_conf_line("vm.max_map_count=65530")},
        exact={
            SYSCTL_CONF: last_line_raised(b"vm.max_map_count=65530\n", b"vm.max_map_count=262144\n")
        },
    ),
    # a file the admin does not own (runtime-generated) that wins at boot: not edited, refused
    Case(
        "sysctl-run-file-with-lower-value",
        REFUSED,
        files={"/run/sysctl.d/99-zz-lower.conf": "vm.max_map_count=65530\n"},
        error=(
            "/run/sysctl.d/99-zz-lower.conf: sets vm.max_map_count=65530",
            "override it with a file of the same name in /etc/sysctl.d",
        ),
    ),
    # `sysctl --system` reads these at boot; the facts' records and file list split on tabs and
    # newlines
    Case(
        "sysctl-file-name-with-a-newline",
        REFUSED,
        docker=False,
        later={"/etc/sysctl.d/zz\nlower.conf": "vm.max_map_count=65530\n"},
        error=(
            "'/etc/sysctl.d/zz\\nlower.conf': a tab or newline in this file's name",
            "rename it",
        ),
    ),
    Case(
        "sysctl-file-name-with-a-tab",
        REFUSED,
        docker=False,
        files={"/etc/sysctl.d/zz\tlower.conf": "vm.max_map_count=65530\n"},
        error=(
            "'/etc/sysctl.d/zz\\tlower.conf': a tab or newline in this file's name",
            "rename it",
        ),
    ),
]


# --------------------------------------------------------------------------- helpers


def snapshot(node) -> dict[str, dict]:
    """path -> type, mode, owner, inode, mtime, content (base64) or link target, for
    SNAPSHOT_ROOTS."""
    return json.loads(node.exec("python3", "-c", SNAPSHOT_SCRIPT, *SNAPSHOT_ROOTS).stdout)


def content(entry: dict | None) -> bytes | None:
    return base64.b64decode(entry["content"]) if entry and "content" in entry else None


def meta(entry: dict) -> tuple:
    return entry["type"], entry["mode"], entry["uid"], entry["gid"], entry.get("target")


@dataclass
class Ran:
    """One CLI invocation: exit code, the node's JSON report, everything printed."""

    code: int
    report: dict
    output: str

    @property
    def status(self) -> str:
        return self.report.get("status", "?")


def run_cli(bed, node, *args: str) -> Ran:
    result = trains_nodeprep(bed, *args, "--host", node.name, "-o", "json")
    try:
        report = json.loads(result.stdout)["nodes"][0]
    except (ValueError, KeyError, IndexError):
        report = {}
    return Ran(result.returncode, report, result.stdout + result.stderr)


@dataclass
class Seen:
    """What happened on a case's node, observed on the node (files, kernel, dockerd), not by the
    tool."""

    before: dict  # snapshot() after the setup, before the tool came
    pid: int | None  # dockerd before
    map_count: int  # vm.max_map_count before
    run: Ran
    after: dict  # snapshot() after the run (REFUSED: after `check` too)
    pid_after: int | None
    map_count_after: int
    check: subprocess.CompletedProcess | None = None  # REFUSED: `check`, text output
    limits: dict | None = None  # CONVERGED: the rlimits dockerd asked runc for
    second: Ran | None = None  # CONVERGED: the second run
    pid_second: int | None = None
    pid_started: int | None = None  # a stopped docker, started by the test after the run
    after_started: dict | None = None  # the files then (docker writes its key.json)
    after_second: dict | None = None
    boot_map_counts: dict[str, int] | None = None  # vm.max_map_count at boot, by what applies it


def set_up(node, case: Case) -> None:
    for path, data in case.later.items():
        node.write(path, data(node.read(path) or b"") if callable(data) else data)
    if case.restart_docker:
        node.docker_restart()
    if case.setup:
        node.sh(case.setup)
    assert (node.docker_pid() is not None) == case.docker, (
        "setup: docker should run iff case.docker"
    )


def start_node(bed, kind: str, case: Case, name: str):
    """A node of that kind with the case's files. RHEL layout: on the sysvinit node its init
    reads OPTIONS from /etc/sysconfig/docker (rhel=True); on the systemd kinds docker.service
    does, by the drop-in of test_rhel_systemd.py (rhel_layout.py)."""
    files = dict(case.files)
    options: dict[str, Any] = {"docker": case.docker}
    if KINDS[kind] is TiniNode:
        options["rhel"] = case.rhel
    elif case.rhel:
        files = {RHEL_DROPIN_PATH: RHEL_DROPIN, **files}
    return bed.add_node(name, KINDS[kind], max_map_count=case.max_map_count, files=files, **options)


def start_docker(node) -> None:
    """Start a stopped docker as its owner would: `service` or `systemctl`."""
    if isinstance(node, SystemdNode):
        node.systemctl("start", "docker")
    else:
        node.exec("service", "docker", "start")
    node.wait_docker()


def play(bed, kind: str, case: Case, name: str) -> Seen:
    """Set the case up on a new node of that kind, run the tool, observe; the node is stopped
    afterwards. case is already the kind's (Case.on_kind)."""
    with BED_LOCK:
        node = start_node(bed, kind, case, name)
    try:
        set_up(node, case)
        before, pid, map_count = snapshot(node), node.docker_pid(), node.max_map_count()
        ran = run_cli(bed, node, "run", "--yes")
        if case.outcome == REFUSED:
            check = trains_nodeprep(bed, "check", "--host", node.name)
            return Seen(
                before,
                pid,
                map_count,
                ran,
                snapshot(node),
                node.docker_pid(),
                node.max_map_count(),
                check=check,
            )
        seen = Seen(
            before, pid, map_count, ran, snapshot(node), node.docker_pid(), node.max_map_count()
        )
        if (ran.code, ran.status) != (0, "changed"):
            return seen  # the test fails on that; nothing more to look at
        if not case.docker:
            # left stopped by the tool (no kubelet needs it); started here, as its owner would,
            # to see that it reads the new config
            start_docker(node)
            seen.pid_started, seen.after_started = node.docker_pid(), snapshot(node)
        seen.limits = node.run_container()
        seen.second = run_cli(bed, node, "run", "--yes")
        seen.pid_second, seen.after_second = node.docker_pid(), snapshot(node)
        seen.boot_map_counts = boot_max_map_counts(node)
        return seen
    finally:
        with BED_LOCK:
            node.stop()


def ulimit_name(entry: dict) -> str | None:
    return next((v for k, v in entry.items() if k.lower() == "name"), None)


def limit_value(entry: dict, field: str) -> int:
    return next((v for k, v in entry.items() if k.lower() == field), 0)


def at_least(have: tuple[int, int], want: tuple[int, int]) -> bool:
    key = lambda v: float("inf") if v == -1 else v  # noqa: E731
    return key(have[0]) >= key(want[0]) and key(have[1]) >= key(want[1])


def assert_json_rest_kept(path: str, before: bytes | None, after: bytes, case: Case) -> None:
    old, new = (json.loads(before) if before else {}), json.loads(after)
    assert set(new) == set(old) | {"default-ulimits"}, f"{path}: keys {sorted(new)}"
    assert {k: new[k] for k in old if k != "default-ulimits"} == {
        k: v for k, v in old.items() if k != "default-ulimits"
    }, f"{path}: another key's value changed"
    old_entries, new_entries = old.get("default-ulimits") or {}, new["default-ulimits"]
    assert set(old_entries) <= set(new_entries), "an existing ulimit entry was dropped or renamed"
    for key, old_entry in old_entries.items():
        if ulimit_name(old_entry) not in WANT and ulimit_name(old_entry) is not None:
            assert new_entries[key] == old_entry, f"unrelated ulimit entry {key} changed"
    names = [ulimit_name(e) for e in new_entries.values()]
    assert sorted(names) == sorted(set(names)), f"duplicate ulimit entries: {names}"
    by_name = {ulimit_name(e): e for e in new_entries.values()}
    for name, want in WANT.items():
        assert at_least(
            (limit_value(by_name[name], "soft"), limit_value(by_name[name], "hard")), want
        ), by_name[name]
    if case.ulimits is not None:
        assert new_entries == case.ulimits


def assignment_span(text: str, variable: str) -> tuple[int, int] | None:
    """Start and end (past its last line) of the last `[export] VARIABLE=...`, a quoted value
    across lines."""
    matches = list(re.finditer(rf"^[ \t]*(?:export[ \t]+)?{variable}=", text, re.M))
    if not matches:
        return None
    pos = matches[-1].end()
    if pos < len(text) and text[pos] in "\"'":
        quote, pos = text[pos], pos + 1
        while text[pos] != quote:
            pos += 2 if quote == '"' and text[pos] == "\\" else 1
    end = text.find("\n", pos)
    return matches[-1].start(), len(text) if end < 0 else end + 1


def shell_words(assignment: str) -> list[str]:
    """The words the shell makes of the assigned value when it expands $VARIABLE unquoted."""
    words = shlex.split(
        assignment.replace("\\\n", ""), comments=True
    )  # backslash-newline: a continuation
    words = words[1:] if words[0] == "export" else words
    return words[0].split("=", 1)[1].split()


def without_ulimit_flags(words: list[str]) -> list[str]:
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--default-ulimit":
            skip = True
        elif not word.startswith("--default-ulimit="):
            kept.append(word)
    return kept


def ulimit_flags(words: list[str]) -> list[str]:
    found = [b for a, b in zip(words, words[1:]) if a == "--default-ulimit"]
    return found + [w.split("=", 1)[1] for w in words if w.startswith("--default-ulimit=")]


def assert_env_rest_kept(path: str, variable: str, before: bytes, after: bytes) -> None:
    """Every byte outside the (last) VARIABLE assignment kept; in it, the other flags in order."""
    old, new = before.decode(), after.decode()
    old_span, (start, end) = assignment_span(old, variable), assignment_span(new, variable)
    if old_span is None:  # one assignment appended, everything before it byte-identical
        assert (
            new[:start].rstrip("\n") == old.rstrip("\n")
            and new[:start] in (old, old + "\n")
            and end == len(new)
        ), after
        old_words = []
    else:
        assert (new[:start], new[end:]) == (old[: old_span[0]], old[old_span[1] :]), (
            f"{path}: bytes outside the {variable} assignment changed"
        )
        old_words = shell_words(old[old_span[0] : old_span[1]])
    new_words = shell_words(new[start:end])
    assert without_ulimit_flags(new_words) == without_ulimit_flags(old_words), (
        f"{path}: other flags not kept in order"
    )
    limits = {}
    for flag in ulimit_flags(new_words):
        name, values = flag.split("=", 1)
        soft, _, hard = values.partition(":")
        assert name not in limits, f"{path}: --default-ulimit {name} twice"
        limits[name] = (int(soft), int(hard or soft))
    for name, want in WANT.items():
        assert at_least(limits[name], want), f"{path}: {name}={limits.get(name)}"


def assert_sysctl_rest_kept(path: str, before: bytes | None, after: bytes, minimum: int) -> None:
    """Only vm.max_map_count values changed (raised, spacing kept), or one such line appended."""
    key = re.compile(r"^\s*vm[./]max_map_count\s*=\s*(?P<value>[^\s#;]+)")
    new = after.decode().splitlines(keepends=True)
    values = [int(m["value"]) for m in map(key.match, new) if m]
    assert values and values[-1] >= minimum, f"{path}: vm.max_map_count {values}"
    if before is None:
        return
    old = before.decode().splitlines(keepends=True)
    appended = new[len(old) :]
    assert len(appended) <= 1 and all(key.match(line) for line in appended), f"{path}: {appended}"
    for number, (a, b) in enumerate(zip(old, new), 1):
        if a == b:
            continue
        was, now = key.match(a), key.match(b)
        assert was and now, f"{path}: line {number} changed: {a!r} -> {b!r}"
        assert (
            a[: was.start("value")] + a[was.end("value") :]
            == b[: now.start("value")] + b[now.end("value") :]
        ), (a, b)
        assert int(now["value"]) >= int(was["value"]), f"{path}: lowered {a!r} -> {b!r}"


def assert_only_expected_changes(case: Case, before: dict, after: dict, docker_ran: bool) -> None:
    gone = set(before) - set(after)
    assert not gone, f"removed: {sorted(gone)}"
    new = set(after) - set(before)
    backups = {path for path in new if BACKUP.match(path)}
    started = (
        set() if docker_ran else {"/etc/docker/key.json"}
    )  # dockerd writes it at its first start
    created = {
        path for path in new - backups - started if not (path + "/").startswith(SERVER_DIRS + "/")
    }
    changed = {
        p for p in before if before[p]["type"] == "file" and content(before[p]) != content(after[p])
    }
    assert changed | created == set(case.changes), (
        f"changed {sorted(changed)}, created {sorted(created)}"
    )
    for path in sorted(set(before) - changed):
        if before[path]["type"] == "dir":  # files appeared in it: its mtime moved
            assert meta(after[path]) == meta(before[path]), path
        else:
            assert after[path] == before[path], (
                f"{path} was touched: {before[path]} -> {after[path]}"
            )
    for path in changed:
        assert meta(after[path]) == meta(before[path]), f"{path}: mode/owner/type not kept"
        beside = [b for b in backups if BACKUP.match(b)["path"] == path]
        assert len(beside) == 1 and not BACKUP.match(beside[0])["absent"], (
            f"{path}: backups {beside}"
        )
        assert content(after[beside[0]]) == content(before[path]), (
            f"{beside[0]} is not the old {path}"
        )
    for path in created:
        assert (
            after[path]["type"] == "file"
            and after[path]["mode"] == 0o644
            and after[path]["uid"] == 0
        ), after[path]
        assert [
            b for b in backups if BACKUP.match(b)["path"] == path and BACKUP.match(b)["absent"]
        ], f"no absent marker for {path}"
    assert {BACKUP.match(b)["path"] for b in backups} == changed | created, (
        f"backups: {sorted(backups)}"
    )


def assert_rest_of_each_file_kept(case: Case, before: dict, after: dict) -> None:
    for path in case.changes:
        old, new = content(before.get(path)), content(after[path])
        if path.endswith(".json"):
            assert_json_rest_kept(path, old, new, case)
        elif path == SC:
            assert_env_rest_kept(path, "OPTIONS", old, new)
        elif path == DD:
            assert_env_rest_kept(path, "DOCKER_OPTS", old, new)
        else:
            assert_sysctl_rest_kept(path, old, new, max(MIN_MAP_COUNT, case.max_map_count))
        if path in case.exact:
            want = case.exact[path]
            want = want(old) if callable(want) else want
            want = want.encode() if isinstance(want, str) else want
            assert want != old, f"case {case.id}: exact {path} equals the old content"
            assert new == want, f"{path}:\n{new.decode(errors='replace')}"
    assert not set(case.exact) - set(case.changes)


BOOT_APPLIERS = {
    "sysctl --system": "sysctl --system",  # procps: the sysvinit boot, and by hand everywhere
    # what a systemd node runs at boot: systemd-sysctl.service is masked in the nodes, so its
    # binary is run by hand (the node's vm.max_map_count is the only writable vm key there)
    "systemd-sysctl": "/lib/systemd/systemd-sysctl",
}


def boot_max_map_counts(node) -> dict[str, int]:
    """vm.max_map_count after each boot applier of the node's kind applies the boot files,
    each from the kernel default: procps' `sysctl --system`, and on systemd nodes also
    systemd-sysctl (which reads no /etc/sysctl.conf but through /etc/sysctl.d/99-sysctl.conf)."""
    appliers = list(BOOT_APPLIERS) if isinstance(node, SystemdNode) else ["sysctl --system"]
    counts = {}
    for name in appliers:
        node.sh(
            f"echo {KERNEL_DEFAULT_MAP_COUNT} > /proc/sys/vm/max_map_count;"
            f" {BOOT_APPLIERS[name]} >/dev/null 2>&1; true"
        )
        counts[name] = node.max_map_count()
    return counts


# --------------------------------------------------------------------------- the table


# (kind, case) in table order, the kinds of a case side by side (the pool mixes the kinds' loads)
MATRIX = [(kind, case) for case in CASES for kind in ALL_KINDS if kind in case.kinds]
assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


@pytest.fixture(scope="module")
def scenarios(request, bed):
    """(kind, case id) -> Seen. The selected cases play PARALLEL at a time, in MATRIX order,
    in the background."""
    selected = [
        (item.callspec.params["kind"], item.callspec.params["case"])
        for item in request.session.items
        if item.module is request.module
        and "case" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="hostile")
    futures = {
        (kind, case.id): pool.submit(play, bed, kind, case.on_kind(kind), f"hostile-{index}")
        for index, (kind, case) in enumerate(selected)
    }
    yield lambda kind, case: futures[kind, case.id].result()
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize(
    ("kind", "case"), MATRIX, ids=[f"{kind}-{case.id}" for kind, case in MATRIX]
)
def test_hostile_input(scenarios, kind: str, case: Case):
    seen: Seen = scenarios(kind, case)
    case = case.on_kind(kind)

    if case.outcome == REFUSED:
        assert (seen.run.code, seen.run.status) == (1, "refused"), seen.run.output
        for part in case.error:
            assert part in seen.run.report["error"], (
                f"{part!r} not in the error: {seen.run.report['error']}"
            )
        assert seen.check.returncode == 1, seen.check.stdout + seen.check.stderr
        refused = [
            line for line in seen.check.stdout.splitlines() if line.lstrip().startswith("refused")
        ]
        assert any(all(part in line for part in case.error) for line in refused), seen.check.stdout
        assert seen.after == seen.before, "a refused node was written to"
        assert seen.map_count_after == seen.map_count
        assert seen.pid_after == seen.pid
        return

    assert (seen.run.code, seen.run.status) == (0, "changed"), seen.run.output
    if not case.docker:
        assert seen.pid_after is None, "a stopped docker that no kubelet needs was started"
        assert any("left stopped" in note for note in seen.run.report["notes"]), seen.run.output
    assert_only_expected_changes(case, seen.before, seen.after, docker_ran=seen.pid is not None)
    assert_rest_of_each_file_kept(case, seen.before, seen.after)
    asked = (seen.limits.get("RLIMIT_NOFILE"), seen.limits.get("RLIMIT_MEMLOCK"))
    assert asked == (case.nofile, UNLIMITED), (
        f"dockerd asks runc for {seen.limits} (restarted: {seen.run.report.get('applied')})"
    )
    assert seen.map_count_after == max(MIN_MAP_COUNT, seen.map_count)
    assert (seen.second.code, seen.second.status) == (0, "unchanged"), seen.second.output
    first = seen.pid_after if case.docker else seen.pid_started
    assert seen.pid_second == first, "docker restarted on the second run"
    assert seen.after_second == (seen.after_started or seen.after), "the second run wrote something"
    for applier, boot in seen.boot_map_counts.items():
        assert boot >= max(MIN_MAP_COUNT, seen.map_count), f"lower at boot ({applier}): {boot}"
