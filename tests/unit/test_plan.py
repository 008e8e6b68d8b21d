"""The planner as a table: facts in, requirements and changes out (no I/O)."""

from __future__ import annotations

import json

from trains_nodeprep.engine.facts import FileFact, NodeFacts
from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.model import DAEMON_JSON, SYSCONFIG_DOCKER, DesiredState, SysctlSetting, Ulimit

DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file="/etc/sysctl.d/99-trains.conf",
    source="test",
)
READY_JSON = json.dumps(
    {
        "default-ulimits": {
            "nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536},
            "memlock": {"Name": "memlock", "Soft": -1, "Hard": -1},
        }
    }
).encode()
SYSCTL_FILE = "/etc/sysctl.d/99-trains.conf"


def node(
    files: dict[str, bytes | str] | None = None,
    runtime: int | None = 65530,
    argv: tuple[str, ...] = ("/usr/sbin/dockerd",),
    docker_running: bool = True,
    init: str = "sysvinit",
) -> NodeFacts:
    facts_files = {}
    for path, content in (files or {}).items():
        if content == "<directory>":
            facts_files[path] = FileFact(path, "directory")
        else:
            facts_files[path] = FileFact(
                path, "file", content.encode() if isinstance(content, str) else content
            )
    sysctl_paths = tuple(
        p
        for p in facts_files
        if p.startswith(("/etc/sysctl", "/usr/lib/sysctl.d", "/run/sysctl.d"))
    )
    return NodeFacts(
        user="root",
        init_system=init,
        docker_installed=True,
        dockerd_pid=42 if docker_running else None,
        dockerd_argv=argv if docker_running else (),
        files=facts_files,
        sysctl_runtime={"vm.max_map_count": runtime},
        sysctl_files=sysctl_paths,
    )


def changed_paths(plan) -> list[str]:
    return [c.path for c in plan.file_changes]


def test_fresh_node_gets_daemon_json_sysctl_file_write_and_restart():
    plan = make_plan(node(), DESIRED)

    assert changed_paths(plan) == [DAEMON_JSON, SYSCTL_FILE]
    assert [(w.key, w.new) for w in plan.sysctl_writes] == [("vm.max_map_count", 262144)]
    assert plan.restart_docker and not plan.blockers
    assert not plan.ready
    assert {r.id: r.ok for r in plan.requirements} == {
        "docker.default-ulimit.nofile": False,
        "docker.default-ulimit.memlock": False,
        "sysctl.vm.max_map_count": False,
        "sysctl.vm.max_map_count.persisted": False,
    }


def test_ready_node_has_an_empty_plan():
    plan = make_plan(
        node({DAEMON_JSON: READY_JSON, SYSCTL_FILE: "vm.max_map_count=262144\n"}, runtime=262144),
        DESIRED,
    )

    assert plan.empty and plan.ready
    assert all(r.ok for r in plan.requirements)


def test_only_sysctl_drift_does_not_restart_docker():
    plan = make_plan(node({DAEMON_JSON: READY_JSON}), DESIRED)

    assert changed_paths(plan) == [SYSCTL_FILE]
    assert not plan.restart_docker


def test_higher_runtime_value_is_persisted_not_lowered():
    plan = make_plan(node({DAEMON_JSON: READY_JSON}, runtime=1048576), DESIRED)

    assert plan.sysctl_writes == ()
    [change] = plan.file_changes
    assert b"vm.max_map_count=1048576\n" in change.new


def test_higher_value_persisted_elsewhere_needs_no_file():
    plan = make_plan(
        node(
            {DAEMON_JSON: READY_JSON, "/etc/sysctl.d/50-es.conf": "vm.max_map_count = 1048576\n"},
            runtime=1048576,
        ),
        DESIRED,
    )

    assert plan.empty


def test_sysconfig_node_gets_flags_and_no_daemon_json():
    plan = make_plan(node({SYSCONFIG_DOCKER: 'OPTIONS="--selinux-enabled"\n'}), DESIRED)

    [docker_change, _] = plan.file_changes
    assert docker_change.path == SYSCONFIG_DOCKER
    assert docker_change.new == (
        b'OPTIONS="--selinux-enabled --default-ulimit nofile=1024:65536 '
        b'--default-ulimit memlock=-1:-1"\n'
    )
    assert plan.restart_docker


def test_sysconfig_already_set_but_dockerd_not_restarted_plans_only_a_restart():
    sysconfig = 'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
    plan = make_plan(
        node(
            {SYSCONFIG_DOCKER: sysconfig, SYSCTL_FILE: "vm.max_map_count=262144\n"}, runtime=262144
        ),
        DESIRED,
    )

    assert plan.file_changes == () and plan.restart_docker
    assert [r.id for r in plan.requirements if not r.ok] == ["docker.running-config"]


def test_sysconfig_flags_on_running_dockerd_are_ready():
    sysconfig = 'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
    argv = (
        "/usr/sbin/dockerd",
        "--default-ulimit",
        "nofile=1024:65536",
        "--default-ulimit",
        "memlock=-1:-1",
    )
    plan = make_plan(
        node(
            {SYSCONFIG_DOCKER: sysconfig, SYSCTL_FILE: "vm.max_map_count=262144\n"},
            runtime=262144,
            argv=argv,
        ),
        DESIRED,
    )

    assert plan.ready


def test_ulimits_in_both_sysconfig_and_daemon_json_is_refused_untouched():
    plan = make_plan(
        node(
            {
                SYSCONFIG_DOCKER: 'OPTIONS="--default-ulimit nofile=1024:4096"\n',
                DAEMON_JSON: READY_JSON,
            }
        ),
        DESIRED,
    )

    assert plan.file_changes == () and plan.sysctl_writes == () and not plan.restart_docker
    assert "refuses to start with flags and daemon.json both" in plan.blockers[0]


def test_sysconfig_without_flags_and_daemon_json_with_ulimits_keeps_using_daemon_json():
    low = READY_JSON.replace(b"65536", b"4096")
    plan = make_plan(
        node({SYSCONFIG_DOCKER: 'OPTIONS="--selinux-enabled"\n', DAEMON_JSON: low}), DESIRED
    )

    assert not plan.blockers
    assert changed_paths(plan) == [DAEMON_JSON, SYSCTL_FILE]


def test_invalid_daemon_json_refuses_the_whole_node():
    plan = make_plan(node({DAEMON_JSON: '{"log-level": "warn",}\n'}), DESIRED)

    assert plan.file_changes == () and plan.sysctl_writes == ()
    assert plan.blockers and "line 1 column" in plan.blockers[0]
    nofile = next(r for r in plan.requirements if r.id == "docker.default-ulimit.nofile")
    assert not nofile.ok and nofile.actual.startswith("error:")


def test_daemon_json_that_is_a_directory_is_refused():
    plan = make_plan(node({DAEMON_JSON: "<directory>"}), DESIRED)

    assert "is a directory" in plan.blockers[0]


def test_low_flags_from_an_unmanaged_source_are_refused():
    argv = ("/usr/sbin/dockerd", "--default-ulimit", "nofile=1024:4096")
    plan = make_plan(node(argv=argv), DESIRED)

    assert plan.blockers and "in a place this tool does not edit" in plan.blockers[0]
    assert plan.file_changes == ()


def test_a_later_admin_sysctl_file_with_a_lower_value_is_raised_in_place():
    low = "# tuning\nvm.max_map_count=65530\nvm.swappiness = 10\n"
    plan = make_plan(node({DAEMON_JSON: READY_JSON, "/etc/sysctl.d/99-zz-low.conf": low}), DESIRED)

    assert not plan.blockers
    assert changed_paths(plan) == [SYSCTL_FILE, "/etc/sysctl.d/99-zz-low.conf"]
    assert plan.file_changes[1].new == b"# tuning\nvm.max_map_count=262144\nvm.swappiness = 10\n"


def test_a_later_package_sysctl_file_with_a_lower_value_is_refused():
    plan = make_plan(
        node(
            {
                DAEMON_JSON: READY_JSON,
                "/usr/lib/sysctl.d/99-zz-low.conf": "vm.max_map_count=65530\n",
            }
        ),
        DESIRED,
    )

    assert plan.blockers and "/usr/lib/sysctl.d/99-zz-low.conf" in plan.blockers[0]
    assert plan.file_changes == ()


def test_an_earlier_sysctl_file_with_a_lower_value_is_overridden():
    plan = make_plan(
        node(
            {DAEMON_JSON: READY_JSON, "/usr/lib/sysctl.d/10-low.conf": "vm.max_map_count=65530\n"}
        ),
        DESIRED,
    )

    assert not plan.blockers
    assert changed_paths(plan) == [SYSCTL_FILE]


def test_a_kernel_without_the_key_is_refused():
    plan = make_plan(node({DAEMON_JSON: READY_JSON}, runtime=None), DESIRED)

    assert plan.blockers and "has no sysctl vm.max_map_count" in plan.blockers[0]


def test_existing_sysctl_file_is_edited_in_place():
    plan = make_plan(
        node(
            {
                DAEMON_JSON: READY_JSON,
                SYSCTL_FILE: "# mine\nvm.max_map_count = 65530\nvm.swappiness=10\n",
            }
        ),
        DESIRED,
    )

    [change] = plan.file_changes
    assert change.new == b"# mine\nvm.max_map_count = 262144\nvm.swappiness=10\n"


def test_a_node_without_docker_is_refused():
    facts = node(docker_running=False)
    facts = NodeFacts(**{**facts.__dict__, "docker_installed": False})

    plan = make_plan(facts, DESIRED)

    assert plan.blockers and "not installed" in plan.blockers[0]


DEBIAN_DEFAULT = (
    "# Docker Upstart and SysVinit configuration file\n"
    'DOCKER_OPTS="--dns 8.8.8.8 --default-ulimit nofile=1024:4096"\n'
)


def test_weaker_flags_in_default_docker_are_raised_there_on_a_sysvinit_node():
    plan = make_plan(node({"/etc/default/docker": DEBIAN_DEFAULT}), DESIRED)

    [docker_change, _] = plan.file_changes
    assert docker_change.path == "/etc/default/docker"
    assert docker_change.new.decode() == DEBIAN_DEFAULT.replace(
        "nofile=1024:4096", "nofile=1024:65536 --default-ulimit memlock=-1:-1"
    )


def test_default_docker_is_ignored_on_systemd_unless_the_unit_reads_it():
    unit = "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n"
    plan = make_plan(
        NodeFacts(
            **{
                **node({"/etc/default/docker": DEBIAN_DEFAULT}).__dict__,
                "init_system": "systemd",
                "docker_unit": unit,
            }
        ),
        DESIRED,
    )

    assert [c.path for c in plan.file_changes][0] == "/etc/docker/daemon.json"


def test_flags_in_default_docker_and_daemon_json_are_refused():
    plan = make_plan(
        node({"/etc/default/docker": DEBIAN_DEFAULT, DAEMON_JSON: READY_JSON}), DESIRED
    )

    assert plan.blockers and "/etc/default/docker and /etc/docker/daemon.json" in plan.blockers[0]


def test_high_enough_flags_in_the_systemd_unit_need_nothing_for_docker():
    unit = (
        "[Service]\nExecStart=\n"
        "ExecStart=/usr/bin/dockerd -H fd:// --default-ulimit nofile=4096:1048576 "
        "--default-ulimit memlock=-1:-1\n"
    )
    facts = NodeFacts(
        **{
            **node({SYSCTL_FILE: "vm.max_map_count=262144\n"}, runtime=262144).__dict__,
            "init_system": "systemd",
            "docker_unit": unit,
        }
    )

    plan = make_plan(facts, DESIRED)

    assert plan.ready
    assert (
        next(r for r in plan.requirements if r.id == "docker.default-ulimit.nofile").actual
        == "4096:1048576"
    )


def test_low_flags_in_the_systemd_unit_are_refused_with_the_fix():
    unit = "[Service]\nExecStart=/usr/bin/dockerd -H fd:// --default-ulimit nofile=1024:4096\n"
    facts = NodeFacts(**{**node().__dict__, "init_system": "systemd", "docker_unit": unit})

    plan = make_plan(facts, DESIRED)

    assert plan.blockers and "docker.service ExecStart" in plan.blockers[0]
    assert "--default-ulimit nofile=1024:65536" in plan.blockers[0]


def test_daemon_json_changed_after_dockerd_started_plans_only_a_restart():
    facts = NodeFacts(
        **{
            **node(
                {DAEMON_JSON: READY_JSON, SYSCTL_FILE: "vm.max_map_count=262144\n"}, runtime=262144
            ).__dict__,
            "dockerd_age": 100.0,
            "file_ages": {DAEMON_JSON: 5.0},
        }
    )

    plan = make_plan(facts, DESIRED)

    assert plan.file_changes == () and plan.restart_docker
    assert [r.id for r in plan.requirements if not r.ok] == ["docker.running-config"]


def test_daemon_json_older_than_dockerd_is_ready():
    facts = NodeFacts(
        **{
            **node(
                {DAEMON_JSON: READY_JSON, SYSCTL_FILE: "vm.max_map_count=262144\n"}, runtime=262144
            ).__dict__,
            "dockerd_age": 5.0,
            "file_ages": {DAEMON_JSON: 100.0},
        }
    )

    assert make_plan(facts, DESIRED).ready


def test_a_file_the_facts_could_not_read_for_its_name_refuses_the_node_naming_it():
    import dataclasses

    facts = dataclasses.replace(node(), unreadable_names=("/etc/sysctl.d/zz\nlow.conf",))

    plan = make_plan(facts, DESIRED)

    assert plan.file_changes == () and plan.sysctl_writes == () and not plan.restart_docker
    assert plan.blockers[0].startswith(
        "'/etc/sysctl.d/zz\\nlow.conf': a tab or newline in this file's name"
    )
    assert plan.blockers[0].endswith("rename it") and "\n" not in plan.blockers[0]


def test_a_stopped_docker_that_no_kubelet_uses_is_configured_and_left_stopped():
    plan = make_plan(node(docker_running=False), DESIRED)

    assert [c.path for c in plan.file_changes][:1] == ["/etc/docker/daemon.json"]
    assert plan.restarts == ()
    assert plan.notes == (
        "docker is not running and is left stopped: the new config applies when it starts",
    )


def test_a_stopped_docker_that_the_kubelet_uses_is_started_with_the_new_config():
    flags = 'KUBELET_EXTRA_ARGS="--container-runtime-endpoint=unix:///run/cri-dockerd.sock"\n'
    plan = make_plan(node({"/etc/default/kubelet": flags}, docker_running=False), DESIRED)

    assert plan.restart_docker and plan.notes == ()


def test_a_data_move_with_the_data_left_behind_refuses_the_node():
    """The bundled playbook keeps Elasticsearch's data in elastic_7 (deploy.data-moves: from
    elastic): data in the old directory and none in the new one is refused, nothing planned."""
    import dataclasses

    from trains_nodeprep.engine.facts import DirFact
    from trains_nodeprep.playbook import load_playbook

    bundled = load_playbook()
    old, new = "/opt/trains/data/elastic", "/opt/trains/data/elastic_7"
    facts = dataclasses.replace(
        node({DAEMON_JSON: READY_JSON}, runtime=262144),
        directories={new: DirFact(new, "ok", 1000, 1000, 0o755)},
    )
    for states, refused in [
        ({old: "data", new: "empty"}, True),
        ({old: "data", new: "absent"}, True),
        ({old: "data", new: "data"}, False),  # migrated: both kept as they are
        ({old: "empty", new: "empty"}, False),
        ({old: "absent", new: "absent"}, False),
    ]:
        plan = make_plan(dataclasses.replace(facts, data_dirs=states), bundled)
        blockers = [b for b in plan.blockers if old in b]
        assert bool(blockers) is refused, states
        if refused:
            assert f"keeps it in {new}" in blockers[0] and "Migrate the data" in blockers[0]
    no_moves = dataclasses.replace(
        bundled, deploy=dataclasses.replace(bundled.deploy, data_moves=())
    )
    plan = make_plan(dataclasses.replace(facts, data_dirs={old: "data", new: "empty"}), no_moves)
    assert not [b for b in plan.blockers if old in b]


def test_a_sysconfig_file_docker_service_does_not_read_is_left_alone_on_systemd():
    """A stray /etc/sysconfig/docker on a Debian systemd node: docker.service names no
    EnvironmentFile for it, so the limits go to daemon.json and the file stays as it is."""
    import dataclasses

    debian_unit = "[Service]\nExecStart=/usr/sbin/dockerd -H fd://\n"
    facts = dataclasses.replace(
        node({SYSCONFIG_DOCKER: 'OPTIONS="--selinux-enabled"\n'}, init="systemd"),
        docker_unit=debian_unit,
    )
    assert changed_paths(make_plan(facts, DESIRED)) == [DAEMON_JSON, SYSCTL_FILE]
    rhel = dataclasses.replace(
        facts,
        docker_unit="[Service]\nEnvironmentFile=-/etc/sysconfig/docker\n"
        "ExecStart=/usr/bin/dockerd $OPTIONS\n",
    )
    assert changed_paths(make_plan(rhel, DESIRED)) == [SYSCONFIG_DOCKER, SYSCTL_FILE]
