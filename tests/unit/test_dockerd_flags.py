"""The flags dockerd gets at its next start, and the directives they share with daemon.json
(dockerd refuses to start with those): tables of unit and env-file text in, flags out."""

from __future__ import annotations

import json

from tests.unit.test_plan import DESIRED, node
from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.formats.dockerd_flags import conflicts, next_start
from trains_nodeprep.formats.env_file import environment as env_file

DEBIAN13_UNIT = """# /usr/lib/systemd/system/docker.service
[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
"""
RHEL_UNIT = """[Service]
EnvironmentFile=-/etc/sysconfig/docker
ExecStart=/usr/bin/dockerd-current ${OPTIONS}
# /etc/systemd/system/docker.service.d/10-site.conf
[Service]
Environment="EXTRA=--debug --label a=b"
ExecStart=
ExecStart=/usr/bin/dockerd $OPTIONS $EXTRA
"""


def test_env_files_as_systemd_reads_them():
    text = (
        '# c\nDOCKER_OPTS="--insecure-registry r:5000 --dns 1.1.1.1"\nexport X=1\nbad line\nY=2\n'
    )
    # systemd sets no "export X": not a valid name (a shell would set X)
    assert env_file(text) == {"DOCKER_OPTS": "--insecure-registry r:5000 --dns 1.1.1.1", "Y": "2"}


def test_a_debian_unit_gets_docker_opts_split_into_words():
    files = {"/etc/default/docker": 'DOCKER_OPTS="--insecure-registry r:5000"\n'}
    start = next_start("systemd", DEBIAN13_UNIT, files)
    assert start.flags == ("-H", "fd://", "--insecure-registry", "r:5000")
    assert start.sources == ("docker.service ExecStart", "/etc/default/docker")


def test_the_last_exec_start_of_a_drop_in_decides_and_environment_is_expanded():
    files = {"/etc/sysconfig/docker": "OPTIONS='--selinux-enabled --log-driver=journald'\n"}
    start = next_start("systemd", RHEL_UNIT, files)
    assert start.flags == (
        "--selinux-enabled",
        "--log-driver=journald",
        "--debug",
        "--label",
        "a=b",
    )


def test_without_systemd_the_init_scripts_variable_gives_the_flags():
    files = {"/etc/default/docker": 'DOCKER_OPTS="-H unix:///var/run/docker.sock --debug"\n'}
    start = next_start("sysvinit", None, files)
    assert start.flags == ("-H", "unix:///var/run/docker.sock", "--debug")
    assert start.sources == ("/etc/default/docker DOCKER_OPTS",)


def test_named_short_and_plain_flags_meet_their_daemon_json_keys():
    flags = ("-H", "fd://", "--insecure-registry=r:5000", "--debug", "--add-runtime", "x=/y")
    config = {"hosts": [], "insecure-registries": [], "debug": True, "runtimes": {}, "dns": []}
    assert conflicts(flags, config) == [
        ("hosts", "-H"),
        ("insecure-registries", "--insecure-registry"),
        ("debug", "--debug"),
    ]  # runtimes are merged by dockerd, not refused


def test_a_directive_in_both_places_refuses_the_node_before_anything_is_written():
    facts = node(
        {
            "/etc/docker/daemon.json": json.dumps({"insecure-registries": ["r:5000"]}),
            "/etc/default/docker": 'DOCKER_OPTS="--insecure-registry r:5000"\n',
        },
        init="systemd",
    )
    facts = type(facts)(**{**facts.__dict__, "docker_unit": DEBIAN13_UNIT})

    plan = make_plan(facts, DESIRED)

    (blocker,) = plan.blockers
    assert plan.file_changes == () and not plan.restarts
    assert blocker.startswith(
        "/etc/docker/daemon.json (after this change) sets insecure-registries"
    )
    assert "(--insecure-registry) from docker.service ExecStart and /etc/default/docker" in blocker


def test_flags_and_daemon_json_that_do_not_meet_are_planned_as_before():
    facts = node(
        {
            "/etc/docker/daemon.json": json.dumps({"insecure-registries": ["r:5000"]}),
            "/etc/default/docker": 'DOCKER_OPTS="--dns 1.1.1.1"\n',
        },
        init="systemd",
    )
    facts = type(facts)(**{**facts.__dict__, "docker_unit": DEBIAN13_UNIT})

    plan = make_plan(facts, DESIRED)

    assert not plan.blockers and "/etc/docker/daemon.json" in [c.path for c in plan.file_changes]
