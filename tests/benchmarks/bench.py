"""On-demand benchmark: trains-nodeprep vs ansible-playbook, pyinfra and an SSH floor.

Not a test (pytest does not collect it: no test_ prefix). Run as root from the repo root:

    sudo .venv/bin/python -m tests.benchmarks.bench [--nodes 1,10,50] [--repeat 5]
        [--benchmarks check,run] [--tools ...] [--markdown FILE] [--json FILE]

What it does:
- makes (once) a venv for the peers at /tmp/trains-nodeprep-bench-venv: ansible-core, pyinfra
  and asyncssh from PyPI (pip's configured index);
- starts the test bed (tests/testbed; waits for the bed lock while another session holds it)
  with docker=False nodes on 10.200.0.x: every tool only ever talks to those addresses;
- check: the same read-only look at each node (daemon.json, vm.max_map_count, the sysctl.d
  file) by every tool, on K nodes at once, --repeat times, interleaved; median wall seconds.
  Each node has a daemon.json and a 99-trains.conf with a low value, so every read finds a
  file and trains-nodeprep reports drift (exit 1: only the timing matters here);
- run: fresh nodes for every tool and every repeat; each tool writes
  /etc/sysctl.d/99-trains.conf and sets vm.max_map_count=262144 at runtime (trains-nodeprep
  gets a sysctl-only playbook, so docker is neither configured nor started); the result is
  checked on every node afterwards, outside the timing;
- counts, per node, the SSH connections and sessions (exec/subsystem channels) each tool
  opened, from the node's sshd log (the bench gives nodes `LogLevel VERBOSE`);
- prints a markdown table (rows: tools, columns: K, cells: median seconds) with ratio rows.

Every subprocess has a timeout; the bed's nodes are stopped at the end (try/finally), and
ssh ControlPersist masters that ansible leaves behind are told to exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.testbed import TestBed

REPO = Path(__file__).resolve().parents[2]
TOOL_VENV = Path("/tmp/trains-nodeprep-bench-venv")
TOOL_PACKAGES = ("ansible-core", "pyinfra", "asyncssh")
TOOL_PYTHON = TOOL_VENV / "bin" / "python"

DAEMON_JSON = "/etc/docker/daemon.json"
SYSCTL_FILE = "/etc/sysctl.d/99-trains.conf"
MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"
TARGET = 262144
SUBNET_PREFIX = "10.200.0."

CHECK_NODE_FILES = {
    DAEMON_JSON: '{\n  "log-driver": "json-file",\n  "log-opts": {"max-size": "10m"}\n}\n',
    SYSCTL_FILE: "vm.max_map_count = 65530\n",
}
# the floor's read: the same three things, a missing file is no error (fresh nodes have none)
READ_COMMAND = f"cat {DAEMON_JSON} {MAX_MAP_COUNT} {SYSCTL_FILE} 2>/dev/null; true"
WRITE_COMMAND = (
    f"umask 022 && printf 'vm.max_map_count = {TARGET}\\n' > {SYSCTL_FILE}.tmp"
    f" && mv -f {SYSCTL_FILE}.tmp {SYSCTL_FILE} && sysctl -w vm.max_map_count={TARGET}"
)

# trains-nodeprep's playbook for the run benchmark: sysctl only (no docker change, no restart)
RUN_PLAYBOOK = f"""version: 1
docker:
  default-ulimits: {{}}
sysctl:
  file: {SYSCTL_FILE}
  settings:
    vm.max_map_count: {TARGET}
"""

ANSIBLE_CHECK_PLAYBOOK = f"""- hosts: all
  gather_facts: false
  tasks:
    - name: daemon.json
      ansible.builtin.slurp: {{src: {DAEMON_JSON}}}
      register: daemon_json
      failed_when: false
    - name: vm.max_map_count
      ansible.builtin.command: cat {MAX_MAP_COUNT}
      register: max_map_count
      changed_when: false
    - name: sysctl file (stat)
      ansible.builtin.stat: {{path: {SYSCTL_FILE}}}
      register: sysctl_stat
    - name: sysctl file
      ansible.builtin.slurp: {{src: {SYSCTL_FILE}}}
      register: sysctl_file
      when: sysctl_stat.stat.exists
"""

ANSIBLE_RUN_PLAYBOOK = f"""- hosts: all
  gather_facts: false
  tasks:
    - name: persist vm.max_map_count
      ansible.builtin.copy:
        dest: {SYSCTL_FILE}
        content: "vm.max_map_count = {TARGET}\\n"
        mode: "0644"
        backup: true
    - name: apply vm.max_map_count
      ansible.builtin.command: sysctl -w vm.max_map_count={TARGET}
"""

ANSIBLE_CFG_DEFAULTS = """[defaults]
host_key_checking = True
interpreter_python = auto_silent
retry_files_enabled = False
"""
# ssh_args below are ansible's own default; pipelining is what this config adds
ANSIBLE_CFG_TUNED = (
    ANSIBLE_CFG_DEFAULTS
    + """
[ssh_connection]
pipelining = True
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s
"""
)

PYINFRA_RUN_DEPLOY = f"""from pyinfra.operations import server

server.sysctl(key="vm.max_map_count", value={TARGET}, persist=True, persist_file="{SYSCTL_FILE}")
"""

# Two adjacent literals only to keep the source under 100 columns: the script is one string.
ASYNCSSH_FLOOR = (
    r'''"""Floor: one asyncssh connection per host, the given commands on it, all hosts at once."""
import asyncio
import json
import sys

import asyncssh


async def one(host, spec):
    async with asyncssh.connect(host, username="root", client_keys=[spec["key"]],
                                known_hosts=spec["known_hosts"], agent_path=None, config=[],
                                connect_timeout=spec["timeout"]) as conn:
        statuses = []
        for command in spec["commands"]:
            result = await asyncio.wait_for(conn.run(command, check=False), spec["timeout"])
            statuses.append(result.exit_status)
        return statuses


async def main():
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    results = await asyncio.gather(*(one(h, spec) for h in spec["hosts"]), return_exceptions=True)
    print(json.dumps({h: (r if isinstance(r, list) else repr(r)) '''
    r"""for h, r in zip(spec["hosts"], results)}))


asyncio.run(main())
"""
)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes


@dataclass
class Done:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_timed(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> Done:
    """Run argv in its own process group; wall seconds from spawn to exit. Killed on timeout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise BenchError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s")
    except BaseException:
        _kill_group(proc.pid)
        proc.communicate()
        raise
    seconds = time.perf_counter() - t0
    return Done(
        argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), seconds
    )


def run_parallel(
    argvs: list[list[str]], *, env: dict[str, str], cwd: Path, timeout: float
) -> list[Done]:
    """Start every argv at once; wall seconds from the first spawn to the last exit."""
    t0 = time.perf_counter()
    procs = []
    try:
        for argv in argvs:
            procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                )
            )
        outputs = []
        for proc in procs:
            remaining = max(0.1, timeout - (time.perf_counter() - t0))
            outputs.append(proc.communicate(timeout=remaining))
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"{Path(argvs[0][0]).name} x{len(argvs)} did not finish within {timeout:.0f} s"
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                _kill_group(proc.pid)
                proc.communicate()
    seconds = time.perf_counter() - t0
    return [
        Done(
            argv,
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            seconds,
        )
        for argv, proc, (out, err) in zip(argvs, procs, outputs)
    ]


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- tool venv


def ensure_tool_venv(timeout: float) -> None:
    """Create /tmp/trains-nodeprep-bench-venv with the peers unless it is already there."""
    probe = [str(TOOL_PYTHON), "-c", "import ansible, pyinfra, asyncssh"]
    have = (TOOL_VENV / "bin" / "ansible-playbook").exists() and (
        TOOL_VENV / "bin" / "pyinfra"
    ).exists()
    if have and subprocess.run(probe, capture_output=True, timeout=60).returncode == 0:
        return
    print(f"creating the peer tools' venv {TOOL_VENV} ({', '.join(TOOL_PACKAGES)}) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(TOOL_VENV)], check=True, timeout=120)
    subprocess.run(
        [str(TOOL_VENV / "bin" / "pip"), "install", "-q", *TOOL_PACKAGES],
        check=True,
        timeout=timeout,
    )
    subprocess.run(probe, check=True, timeout=60)


def tool_versions() -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"? ({err})"
        return (done.stdout + done.stderr).strip()

    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    peers = json.loads(
        out([str(TOOL_PYTHON), "-c", code, "ansible-core", "pyinfra", "asyncssh", "paramiko"])
        or "{}"
    )
    ours = json.loads(
        out([sys.executable, "-c", code, "trains-nodeprep", "paramiko", "cryptography"]) or "{}"
    )
    return {
        "trains-nodeprep": ours.get("trains-nodeprep", "?"),
        "trains-nodeprep's paramiko / cryptography": (
            f"{ours.get('paramiko')} / {ours.get('cryptography')}"
        ),
        "ansible-core": peers.get("ansible-core", "?"),
        "pyinfra (paramiko)": f"{peers.get('pyinfra')} ({peers.get('paramiko')})",
        "asyncssh": peers.get("asyncssh", "?"),
        "OpenSSH client": out(["ssh", "-V"]),
    }


def machine_description() -> dict[str, str]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem = next(
        (
            line.split()[1]
            for line in read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        "?",
    )
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "trains_nodeprep"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} cores ({model})",
        "memory": f"{int(mem) // 1024} MiB",
        "os": f"{os_name} ({read('/etc/debian_version').strip()}), kernel {platform.release()}",
        "python": f"{platform.python_version()} ({sys.executable})",
        "trains-nodeprep source": f"git {git}"
        + (" + uncommitted changes in trains_nodeprep/" if dirty else ""),
        "load average at start": " ".join(read("/proc/loadavg").split()[:3]),
    }


# --------------------------------------------------------------------------- results


@dataclass
class Cell:
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    connections: list[float] = field(default_factory=list)  # per node, per sample
    sessions: list[float] = field(default_factory=list)
    remote_commands: list[float] = field(default_factory=list)  # trains-nodeprep's own count

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Tool:
    key: str
    label: str
    measure: Callable  # (nodes) -> (seconds, remote_commands per node or None)


class Results:
    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, int], Cell] = {}
        self.labels: dict[tuple[str, str], str] = {}

    def cell(self, bench: str, tool: Tool, k: int) -> Cell:
        self.labels[(bench, tool.key)] = tool.label
        return self.cells.setdefault((bench, tool.key, k), Cell())

    def to_json(self) -> dict:
        return {f"{b}/{t}/{k}": c.__dict__ for (b, t, k), c in self.cells.items()}


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(
        self, bed: TestBed, workdir: Path, args: argparse.Namespace, results: Results
    ) -> None:
        self.bed = bed
        self.workdir = workdir
        self.args = args
        self.results = results
        self.timeout = args.timeout
        self.nodeprep_bin = str(Path(sys.executable).parent / "trains-nodeprep")
        if not Path(self.nodeprep_bin).exists():
            self.nodeprep_bin = shutil.which("trains-nodeprep") or "trains-nodeprep"
        self.control_dirs: list[Path] = []
        self._serial = 0
        self.env = {
            "PATH": (
                f"{TOOL_VENV}/bin:{Path(sys.executable).parent}:"
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ),
            "HOME": str(bed.home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "USER": "root",
            "LOGNAME": "root",
        }
        (workdir / "run-playbook.yaml").write_text(RUN_PLAYBOOK)
        (workdir / "ansible-check.yaml").write_text(ANSIBLE_CHECK_PLAYBOOK)
        (workdir / "ansible-run.yaml").write_text(ANSIBLE_RUN_PLAYBOOK)
        (workdir / "ansible-defaults.cfg").write_text(ANSIBLE_CFG_DEFAULTS)
        (workdir / "ansible-tuned.cfg").write_text(ANSIBLE_CFG_TUNED)
        (workdir / "pyinfra-run.py").write_text(PYINFRA_RUN_DEPLOY)
        (workdir / "floor_asyncssh.py").write_text(ASYNCSSH_FLOOR)
        (workdir / "pyinfra-cwd").mkdir(exist_ok=True)
        self.sshd_config = (
            bed.layer / "etc" / "ssh" / "sshd_config"
        ).read_text() + "LogLevel VERBOSE\n"

    # ----------------------------------------------------------------- nodes
    def add_nodes(self, prefix: str, k: int, files: dict[str, str] | None) -> list:
        node_files = {"/etc/ssh/sshd_config": self.sshd_config, **(files or {})}
        nodes = []
        for i in range(k):
            nodes.append(self.bed.add_node(f"{prefix}-{i}", docker=False, files=node_files))
        for node in nodes:
            if not node.address.startswith(SUBNET_PREFIX):
                raise BenchError(f"node {node.name} has address {node.address}, not on the bed")
        return nodes

    @staticmethod
    def stop_nodes(nodes: list) -> None:
        for node in nodes:
            if node.init_pid:
                node.stop()

    @staticmethod
    def log_sizes(nodes: list) -> list[int]:
        sizes = []
        for node in nodes:
            try:
                sizes.append((node.log_dir / "sshd.log").stat().st_size)
            except OSError:
                sizes.append(0)
        return sizes

    @staticmethod
    def ssh_counts(nodes: list, before: list[int]) -> tuple[float, float]:
        """SSH connections and sessions per node (average) logged since `before`."""
        connections = sessions = 0
        for node, offset in zip(nodes, before):
            try:
                with open(node.log_dir / "sshd.log", "rb") as handle:
                    handle.seek(offset)
                    text = handle.read().decode(errors="replace")
            except OSError:
                continue
            connections += text.count("Accepted publickey for")
            sessions += text.count("Starting session:")
        return connections / len(nodes), sessions / len(nodes)

    # ----------------------------------------------------------------- tools
    def _scratch(self, name: str) -> Path:
        self._serial += 1
        path = self.workdir / f"{name}{self._serial}"
        path.mkdir()
        return path

    def nodeprep(self, command: str, parallel: int | None) -> Callable:
        def measure(nodes: list):
            argv = [self.nodeprep_bin, command]
            for node in nodes:
                argv += ["--host", node.address]
            argv += ["--user", "root", "-o", "json"]
            if parallel is not None:  # 0: as many as there are nodes
                argv += ["--parallel", str(max(1, min(parallel or len(nodes), 256)))]
            if command == "check":
                argv += ["--no-cluster"]
                ok_codes, ok_states = (0, 1), {"drift", "ready"}
            else:
                argv += [
                    "--no-deploy",
                    "--yes",
                    "--playbook",
                    str(self.workdir / "run-playbook.yaml"),
                ]
                ok_codes, ok_states = (0,), {"changed"}
            done = run_timed(argv, env=self.env, cwd=self.workdir, timeout=self.timeout)
            try:
                report = json.loads(done.stdout)
            except ValueError:
                raise BenchError(
                    f"trains-nodeprep {command} exit {done.returncode}, "
                    f"no JSON: {_tail(done.stderr)}"
                )
            states = [n.get("status") for n in report.get("nodes", [])]
            if (
                done.returncode not in ok_codes
                or len(states) != len(nodes)
                or not set(states) <= ok_states
            ):
                errors = sorted(
                    {str(n.get("error")) for n in report.get("nodes", []) if n.get("error")}
                )
                raise BenchError(
                    f"trains-nodeprep {command}: exit {done.returncode}, {len(states)} nodes, "
                    f"states {sorted(set(states))}, errors {errors[:3]}; {_tail(done.stderr, 3)}"
                )
            commands = [n.get("remote_commands", 0) for n in report["nodes"]]
            return done.seconds, sum(commands) / len(commands)

        return measure

    def ansible(self, config: str, playbook: str) -> Callable:
        def measure(nodes: list):
            scratch = self._scratch("ansible")
            control = scratch / "cp"
            control.mkdir()
            self.control_dirs.append(control)
            inventory = scratch / "inventory.yml"
            common = (
                f"-o UserKnownHostsFile={self.bed.known_hosts} -o GlobalKnownHostsFile=/dev/null "
                "-o StrictHostKeyChecking=yes "
                "-o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10"
            )
            inventory.write_text(
                json.dumps(
                    {
                        "all": {
                            "hosts": {node.address: None for node in nodes},
                            "vars": {
                                "ansible_user": "root",
                                "ansible_ssh_private_key_file": str(self.bed.client_key),
                                "ansible_ssh_common_args": common,
                            },
                        }
                    }
                )
            )
            env = dict(
                self.env,
                ANSIBLE_CONFIG=str(self.workdir / config),
                ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
                ANSIBLE_NOCOLOR="1",
                ANSIBLE_LOCAL_TEMP=str(scratch / "tmp"),
            )
            argv = [
                str(TOOL_VENV / "bin" / "ansible-playbook"),
                "-i",
                str(inventory),
                "-f",
                str(len(nodes)),
                str(self.workdir / playbook),
            ]
            try:
                done = run_timed(argv, env=env, cwd=scratch, timeout=self.timeout)
            finally:
                self.close_control_masters(control)
            recap = re.findall(
                r"^(\S+)\s+: ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)",
                done.stdout,
                re.M,
            )
            good = [
                h
                for h, ok, unreachable, failed in recap
                if unreachable == "0" and failed == "0" and int(ok) > 0
            ]
            if done.returncode != 0 or len(good) != len(nodes):
                raise BenchError(
                    f"ansible-playbook exit {done.returncode}, {len(good)}/{len(nodes)} hosts ok: "
                    f"{_tail(done.stdout + done.stderr)}"
                )
            return done.seconds, None

        return measure

    def pyinfra_base(self, nodes: list) -> list[str]:
        # an inventory file: pyinfra 3.10 stats a comma-separated host list as a path first,
        # which fails (ENAMETOOLONG) beyond ~20 hosts
        inventory = self._scratch("pyinfra") / "inventory.py"
        inventory.write_text(f"nodes = {[node.address for node in nodes]!r}\n")
        return [
            str(TOOL_VENV / "bin" / "pyinfra"),
            "--ssh-user",
            "root",
            "--ssh-key",
            str(self.bed.client_key),
            "--parallel",
            str(len(nodes)),
            "--data",
            f"ssh_known_hosts_file={self.bed.known_hosts}",
            "--data",
            "ssh_strict_host_key_checking=yes",
            "--data",
            "ssh_allow_agent=false",
            "--data",
            "ssh_look_for_keys=false",
            str(inventory),
        ]

    def pyinfra_check(self) -> Callable:
        def measure(nodes: list):
            argv = self.pyinfra_base(nodes) + [
                "fact",
                "files.FileContents",
                f"path={DAEMON_JSON}",
                "server.Command",
                f"command=cat {MAX_MAP_COUNT}",
                "files.FileContents",
                f"path={SYSCTL_FILE}",
            ]
            done = run_timed(
                argv, env=self.env, cwd=self.workdir / "pyinfra-cwd", timeout=self.timeout
            )
            output = done.stdout + done.stderr  # pyinfra prints the facts' JSON to stderr
            found = sum(1 for node in nodes if f'"{node.address}"' in output)
            if done.returncode != 0 or found != len(nodes) or "65530" not in output:
                raise BenchError(
                    f"pyinfra fact exit {done.returncode}, "
                    f"{found}/{len(nodes)} hosts in the output: "
                    f"{_tail(done.stdout + done.stderr)}"
                )
            return done.seconds, None

        return measure

    def pyinfra_run(self) -> Callable:
        def measure(nodes: list):
            argv = self.pyinfra_base(nodes) + ["-y", str(self.workdir / "pyinfra-run.py")]
            done = run_timed(
                argv, env=self.env, cwd=self.workdir / "pyinfra-cwd", timeout=self.timeout
            )
            if done.returncode != 0:
                raise BenchError(
                    f"pyinfra exit {done.returncode}: {_tail(done.stdout + done.stderr)}"
                )
            return done.seconds, None

        return measure

    def asyncssh_floor(self, commands: list[str]) -> Callable:
        def measure(nodes: list):
            spec = self._scratch("asyncssh") / "spec.json"
            spec.write_text(
                json.dumps(
                    {
                        "hosts": [n.address for n in nodes],
                        "key": str(self.bed.client_key),
                        "known_hosts": str(self.bed.known_hosts),
                        "commands": commands,
                        "timeout": 60,
                    }
                )
            )
            argv = [str(TOOL_PYTHON), str(self.workdir / "floor_asyncssh.py"), str(spec)]
            done = run_timed(argv, env=self.env, cwd=self.workdir, timeout=self.timeout)
            try:
                result = json.loads(done.stdout)
            except ValueError:
                raise BenchError(f"asyncssh floor exit {done.returncode}: {_tail(done.stderr)}")
            bad = {h: r for h, r in result.items() if r != [0] * len(commands)}
            if done.returncode != 0 or len(result) != len(nodes) or bad:
                raise BenchError(
                    f"asyncssh floor: {len(bad)} hosts failed: {list(bad.items())[:3]}"
                )
            return done.seconds, None

        return measure

    def openssh_floor(self, command: str) -> Callable:
        def measure(nodes: list):
            argvs = [["ssh", "-F", str(self.bed.ssh_config), node.name, command] for node in nodes]
            dones = run_parallel(argvs, env=self.env, cwd=self.workdir, timeout=self.timeout)
            bad = [d for d in dones if d.returncode != 0]
            if bad:
                raise BenchError(f"ssh: {len(bad)} hosts failed: {_tail(bad[0].stderr, 3)}")
            return dones[0].seconds, None

        return measure

    def close_control_masters(self, control: Path) -> None:
        """Ask every ControlPersist master ansible left in `control` to exit (by its socket)."""
        if not control.is_dir():
            return
        for sock in control.iterdir():
            try:
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench-master"],
                    capture_output=True,
                    timeout=10,
                    env=self.env,
                )
            except subprocess.TimeoutExpired:
                pass

    # ----------------------------------------------------------------- the two benchmarks
    def check_tools(self) -> list[Tool]:
        tools = [
            Tool(
                "nodeprep",
                "trains-nodeprep check (--parallel K)",
                self.nodeprep("check", parallel=0),
            ),
            Tool(
                "nodeprep-p16",
                "trains-nodeprep check (default --parallel 16)",
                self.nodeprep("check", parallel=None),
            ),
            Tool(
                "ansible",
                "ansible-playbook, defaults",
                self.ansible("ansible-defaults.cfg", "ansible-check.yaml"),
            ),
            Tool(
                "ansible-tuned",
                "ansible-playbook, pipelining + ControlPersist",
                self.ansible("ansible-tuned.cfg", "ansible-check.yaml"),
            ),
            Tool("pyinfra", "pyinfra, 3 facts", self.pyinfra_check()),
            Tool(
                "asyncssh",
                "floor: asyncssh, 1 connection + 1 exec per host",
                self.asyncssh_floor([READ_COMMAND]),
            ),
            Tool(
                "openssh",
                "floor: OpenSSH client (ssh -F), K in parallel",
                self.openssh_floor(READ_COMMAND),
            ),
        ]
        return [t for t in tools if t.key in self.args.tools]

    def run_tools(self) -> list[Tool]:
        tools = [
            Tool(
                "nodeprep", "trains-nodeprep run (--parallel K)", self.nodeprep("run", parallel=0)
            ),
            Tool(
                "ansible",
                "ansible-playbook, defaults",
                self.ansible("ansible-defaults.cfg", "ansible-run.yaml"),
            ),
            Tool(
                "ansible-tuned",
                "ansible-playbook, pipelining + ControlPersist",
                self.ansible("ansible-tuned.cfg", "ansible-run.yaml"),
            ),
            Tool("pyinfra", "pyinfra, server.sysctl persist=True", self.pyinfra_run()),
            Tool(
                "asyncssh",
                "floor: asyncssh, 1 connection + 2 execs (read, write+apply)",
                self.asyncssh_floor([READ_COMMAND, WRITE_COMMAND]),
            ),
        ]
        return [t for t in tools if t.key in self.args.tools]

    def measure(self, bench: str, tool: Tool, nodes: list, *, record: bool = True) -> None:
        cell = self.results.cell(bench, tool, len(nodes))
        if cell.error:
            return
        before = self.log_sizes(nodes)
        try:
            seconds, remote = tool.measure(nodes)
        except BenchError as err:
            cell.error = str(err)
            print(f"    {tool.key:14s} K={len(nodes):<3d} FAILED: {err}", flush=True)
            return
        connections, sessions = self.ssh_counts(nodes, before)
        if not record:
            print(f"    {tool.key:14s} K={len(nodes):<3d} warm-up {seconds:7.2f} s", flush=True)
            return
        cell.samples.append(seconds)
        cell.connections.append(connections)
        cell.sessions.append(sessions)
        if remote is not None:
            cell.remote_commands.append(remote)
        print(
            f"    {tool.key:14s} K={len(nodes):<3d} {seconds:7.2f} s  "
            f"({connections:g} conn, {sessions:g} sessions per node)",
            flush=True,
        )

    def check_benchmark(self, ks: list[int]) -> None:
        tools = self.check_tools()
        print(f"check: starting {max(ks)} nodes", flush=True)
        nodes = self.add_nodes("chk", max(ks), CHECK_NODE_FILES)
        try:
            for index, k in enumerate(ks):
                subset = nodes[:k]
                print(f"  check, K={k}", flush=True)
                if index == 0 and self.args.warmup:
                    for tool in tools:
                        self.measure("check", tool, subset, record=False)
                for _ in range(self.args.repeat):
                    for tool in tools:
                        self.measure("check", tool, subset)
        finally:
            self.stop_nodes(nodes)

    def run_benchmark(self, ks: list[int]) -> None:
        tools = self.run_tools()
        for k in ks:
            print(f"  run, K={k} (fresh nodes for each tool and repeat)", flush=True)
            for repeat in range(self.args.repeat):
                for number, tool in enumerate(tools):
                    if self.results.cell("run", tool, k).error:
                        continue
                    nodes = self.add_nodes(f"r{k}-{repeat}-{number}", k, None)
                    try:
                        self.measure("run", tool, nodes)
                        if not self.results.cell("run", tool, k).error:
                            self.verify_run(tool, nodes)
                    finally:
                        self.stop_nodes(nodes)

    def verify_run(self, tool: Tool, nodes: list) -> None:
        """Outside the timing: every node has the file and the runtime value."""
        for node in nodes:
            content = (node.read(SYSCTL_FILE) or b"").decode(errors="replace")
            value = node.max_map_count()
            if value != TARGET or not re.search(
                rf"^\s*vm\.max_map_count\s*=\s*{TARGET}\s*$", content, re.M
            ):
                cell = self.results.cell("run", tool, len(nodes))
                cell.error = (
                    f"{node.name}: after the run vm.max_map_count={value}, "
                    f"{SYSCTL_FILE}={content!r}"
                )
                print(f"    {tool.key} FAILED verification: {cell.error}", flush=True)
                return


# --------------------------------------------------------------------------- report


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_markdown(
    results: Results,
    ks: list[int],
    benches: list[str],
    repeat: int,
    machine: dict[str, str],
    versions: dict[str, str],
    elapsed: float,
) -> str:
    out: list[str] = []
    out.append("Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()))
    out.append("")
    out.append("Tools: " + "; ".join(f"{k} {v}" for k, v in versions.items()))
    out.append("")
    out.append(
        f"Median wall seconds of {repeat} runs per cell (tools interleaved), "
        f"bench took {elapsed / 60:.1f} min."
    )
    for bench in benches:
        keys = [key for (b, key) in results.labels if b == bench]
        if not keys:
            continue
        kmax = max(ks)
        out.append("")
        out.append(
            f"### {bench}"
            + (
                " (read-only)"
                if bench == "check"
                else " (fresh nodes: write the sysctl file, sysctl -w)"
            )
        )
        out.append("")
        head = ["tool"] + [f"K={k}" for k in ks] + [f"SSH conn / sessions per node (K={kmax})"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for key in keys:
            cells = [results.cells.get((bench, key, k)) for k in ks]
            row = [results.labels[(bench, key)]]
            for cell in cells:
                if cell is None:
                    row.append("—")
                elif cell.error and not cell.samples:
                    row.append("failed")
                else:
                    row.append(_fmt(cell.median) + (" (failed later)" if cell.error else ""))
            last = results.cells.get((bench, key, kmax))
            if last and last.sessions:
                count = (
                    f"{statistics.median(last.connections):g} / "
                    f"{statistics.median(last.sessions):g}"
                )
                if last.remote_commands:
                    count += f" (remote_commands {statistics.median(last.remote_commands):g})"
            else:
                count = "—"
            out.append("| " + " | ".join(row + [count]) + " |")
        # ratios: how many times the other tool's time is trains-nodeprep's
        base_key = "nodeprep"
        base = {k: results.cells.get((bench, base_key, k)) for k in ks}
        if any(c and c.median for c in base.values()):
            out.append("")
            out.append(
                f"Ratios, {bench}: tool's median ÷ trains-nodeprep's median "
                "(> 1: trains-nodeprep is faster)"
            )
            out.append("")
            out.append("| ratio | " + " | ".join(f"K={k}" for k in ks) + " |")
            out.append("|" + "---|" * (len(ks) + 1))
            for key in keys:
                if key == base_key:
                    continue
                row = [f"{results.labels[(bench, key)]} ÷ trains-nodeprep"]
                for k in ks:
                    other, mine = results.cells.get((bench, key, k)), base[k]
                    if other and other.median and mine and mine.median:
                        row.append(f"{other.median / mine.median:.2f}")
                    else:
                        row.append("—")
                out.append("| " + " | ".join(row) + " |")
        errors = [
            (key, k, c.error) for (b, key, k), c in results.cells.items() if b == bench and c.error
        ]
        for key, k, error in errors:
            one_line = " ".join(error.split())
            out.append(f"\n- {bench} {key} K={k} failed: {one_line[:400]}")
    if "check" in benches:
        out.append("")
        out.append(targets(results, max(ks)))
    return "\n".join(out) + "\n"


def targets(results: Results, k: int) -> str:
    def med(key: str) -> float | None:
        cell = results.cells.get(("check", key, k))
        return cell.median if cell else None

    mine, floor, pyinfra, ansible = med("nodeprep"), med("asyncssh"), med("pyinfra"), med("ansible")
    lines = [f"Targets at K={k} (check):"]
    if mine and floor:
        lines.append(
            f"- within 1.3x of the asyncssh floor: {mine / floor:.2f}x -> "
            f"{'met' if mine / floor <= 1.3 else 'NOT met'}"
        )
    if mine and pyinfra:
        lines.append(
            f"- >= 1.5x faster than pyinfra: {pyinfra / mine:.2f}x -> "
            f"{'met' if pyinfra / mine >= 1.5 else 'NOT met'}"
        )
    if mine and ansible:
        lines.append(
            f"- >= 15x faster than ansible (defaults): {ansible / mine:.2f}x -> "
            f"{'met' if ansible / mine >= 15 else 'NOT met'}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

ALL_TOOLS = (
    "nodeprep",
    "nodeprep-p16",
    "ansible",
    "ansible-tuned",
    "pyinfra",
    "asyncssh",
    "openssh",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--nodes", default="1,10,50", help="comma-separated K values (default 1,10,50)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs per tool and K; the median is reported (default 5)",
    )
    parser.add_argument(
        "--benchmarks", default="check,run", help="check, run or both (default check,run)"
    )
    parser.add_argument(
        "--tools", default=",".join(ALL_TOOLS), help=f"subset of {','.join(ALL_TOOLS)}"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds per tool invocation (default 600)"
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=3600,
        help="seconds to wait for the bed lock (default 3600)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed first round of check",
    )
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the bench's temporary directory"
    )
    args = parser.parse_args(argv)
    try:
        args.ks = sorted({int(k) for k in args.nodes.split(",") if k.strip()})
    except ValueError:
        parser.error("--nodes wants integers, e.g. 1,10,50")
    if not args.ks or args.ks[0] < 1 or args.ks[-1] > 200:
        parser.error("--nodes: each K from 1 to 200 (the bed's /24 has 245 addresses)")
    args.benches = [b for b in ("check", "run") if b in args.benchmarks.split(",")]
    args.tools = set(args.tools.split(","))
    if not args.benches or not args.tools <= set(ALL_TOOLS) or args.repeat < 1:
        parser.error("bad --benchmarks, --tools or --repeat")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "the test bed needs root: sudo .venv/bin/python -m tests.benchmarks.bench",
            file=sys.stderr,
        )
        return 2
    ensure_tool_venv(timeout=900)
    machine = machine_description()
    versions = tool_versions()
    workdir = Path(tempfile.mkdtemp(prefix="tnp-bench-"))
    os.chmod(workdir, 0o755)
    bed = TestBed(workdir / "bed")
    results = Results()
    bench = None
    t0 = time.monotonic()
    try:
        print(
            f"starting the test bed in {workdir} "
            f"(waits while another session holds {'/run/tnp-testbed.lock'})",
            flush=True,
        )
        bed.start(lock_timeout=args.lock_timeout)
        (workdir / "bench").mkdir()
        bench = Bench(bed, workdir / "bench", args, results)
        if "check" in args.benches:
            bench.check_benchmark(args.ks)
        if "run" in args.benches:
            bench.run_benchmark(args.ks)
    except KeyboardInterrupt:
        print("interrupted: stopping the bed", file=sys.stderr)
    finally:
        if bench is not None:
            for control in bench.control_dirs:
                bench.close_control_masters(control)
        if bed.started:
            bed.stop()
        if args.json:
            args.json.write_text(json.dumps(results.to_json(), indent=1))
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report = render_markdown(
        results, args.ks, args.benches, args.repeat, machine, versions, time.monotonic() - t0
    )
    print()
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
    failed = any(c.error for c in results.cells.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
