"""A systemd docker node laid out as RHEL, CentOS and Amazon Linux packages have it:
docker.service reads /etc/sysconfig/docker (EnvironmentFile=) and passes $OPTIONS on its
ExecStart. Here a drop-in gives Debian's docker.service that layout, on Debian 12 and Debian 13
nodes with real systemd and dockerd (the tini nodes cover the sysvinit RHEL layout)."""

from __future__ import annotations

import pytest

from tests.integration.cli import json_output, trains_nodeprep
from tests.integration.rhel_layout import RHEL_DROPIN, RHEL_DROPIN_PATH, SYSCONFIG
from tests.testbed import Debian13Node, SystemdNode


@pytest.mark.parametrize("kind", [SystemdNode, Debian13Node], ids=["debian12", "debian13"])
def test_a_rhel_layout_unit_gets_the_flags_in_sysconfig_options(bed, make_node, kind):
    node = make_node(
        kind=kind,
        files={
            RHEL_DROPIN_PATH: RHEL_DROPIN,
            SYSCONFIG: "# /etc/sysconfig/docker\nOPTIONS='--log-level=warn'\n",
        },
    )
    assert "--log-level=warn" in node.exec("cat", f"/proc/{node.docker_pid()}/cmdline").stdout
    pid = node.docker_pid()

    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json_output(ran)["nodes"][0]
    assert [c["path"] for c in report["changes"]][:1] == [SYSCONFIG]
    assert report["applied"]["restarted"] == ["docker"]
    notes = report["applied"]["notes"]  # Docker 26 validates the new flags before the write
    assert any("the restart is the validation" in n for n in notes) == (kind is SystemdNode)
    options = node.read(SYSCONFIG).decode()
    assert options.startswith("# /etc/sysconfig/docker\nOPTIONS='--log-level=warn --default-ulimit")
    assert node.read("/etc/docker/daemon.json") is None  # one source of ulimits: the flags
    assert node.docker_pid() not in (None, pid)
    requested = node.run_container()
    assert requested["RLIMIT_MEMLOCK"] == (-1, -1)
    assert requested["RLIMIT_NOFILE"][1] >= 65536

    again = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")
    assert json_output(again)["nodes"][0]["status"] == "unchanged"
