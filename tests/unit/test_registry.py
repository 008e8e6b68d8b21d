"""The one registry of managed files and services: what a changed file restarts, whether it is
secret, what `plan` lists and warns, what `restore` puts back; and the record protocol."""

from __future__ import annotations

import pytest

from trains_nodeprep.engine.builder import managed_file
from trains_nodeprep.engine.types import Plan, Service
from trains_nodeprep.model import APISERVER_CONF
from trains_nodeprep.playbook import load_playbook
from trains_nodeprep.remote.protocol import ARCHIVE_MARKER, decode_records, encode_record
from trains_nodeprep.report import plan_commands, restart_warnings
from trains_nodeprep.requirements.registry import managed_files

MANAGED = managed_files(load_playbook())


@pytest.mark.parametrize(
    ("path", "restarts", "secret"),
    [
        ("/etc/docker/daemon.json", Service.DOCKER, False),
        ("/etc/sysconfig/docker", Service.DOCKER, False),
        ("/etc/default/docker", Service.DOCKER, False),
        ("/etc/systemd/system/containerd.service.d/99-trains.conf", Service.CONTAINERD, False),
        ("/etc/sysctl.d/99-trains.conf", None, False),
        ("/etc/sysctl.d/zz site tuning.conf", None, False),
        ("/etc/sysctl.conf", None, False),
        (APISERVER_CONF, None, True),
    ],
)
def test_each_managed_file_says_what_it_restarts_and_whether_it_is_secret(path, restarts, secret):
    found = managed_file(MANAGED, path)
    assert (found.restarts, found.secret) == (restarts, secret)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/etc/sysctl.d/sub/x.conf", "/etc/docker/daemon.json.bak"]
)
def test_a_file_no_module_manages_is_never_planned(path):
    with pytest.raises(ValueError, match="not a file trains-nodeprep manages"):
        managed_file(MANAGED, path)


def test_plan_lists_the_commands_and_warnings_of_each_restart_in_restart_order():
    plan = Plan(
        requirements=(),
        restart_reasons=((Service.DOCKER, "daemon.json changed"), (Service.CONTAINERD, "drop-in")),
    )

    assert plan.restarts == (Service.CONTAINERD, Service.DOCKER)
    assert plan_commands(plan, "systemd") == [
        "systemctl daemon-reload",
        "systemctl restart containerd",
        "systemctl restart docker",
    ]
    assert plan_commands(plan, "sysvinit")[-1] == "service docker restart"
    first, second = restart_warnings(plan)
    assert first.startswith("containerd will restart (drop-in): running containers keep running")
    assert (
        second == "docker will restart (daemon.json changed): every container on this node restarts"
    )


SAMPLES = [b"", b"plain text", b"tab\there", b"two\nlines\n", "ünï".encode()]


@pytest.mark.parametrize("data", SAMPLES)
def test_a_record_comes_back_as_it_was_written(data):
    (record,) = decode_records(encode_record("file", "/etc/x y", "ok", data=data).decode(), 3)
    assert record.fields == ("file", "/etc/x y", "ok") and record.data == data


def test_the_archive_marker_is_a_record_the_scripts_write():
    assert ARCHIVE_MARKER == b"archive\tall\tok\t=\n"
