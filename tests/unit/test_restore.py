"""The restore planner: the newest backup set, markers for files that did not exist."""

from __future__ import annotations

from trains_nodeprep.engine.facts import FileFact, NodeFacts
from trains_nodeprep.engine.restore import make_restore_plan

DAEMON = "/etc/docker/daemon.json"
SYSCTL = "/etc/sysctl.d/99-trains.conf"


def facts(files: dict[str, bytes], backups: dict[str, tuple[str, ...]]) -> NodeFacts:
    return NodeFacts(
        user="root",
        init_system="sysvinit",
        docker_installed=True,
        dockerd_pid=7,
        dockerd_argv=(),
        files={p: FileFact(p, "file", c) for p, c in files.items()},
        sysctl_runtime={},
        backups=backups,
    )


def test_restores_every_file_of_the_newest_backup_set_only():
    old = f"{DAEMON}.20261101T000000.000001Z.bak"
    new = f"{DAEMON}.20261102T000000.000001Z.bak"
    marker = f"{SYSCTL}.20261102T000000.000001Z.absent.bak"
    plan = make_restore_plan(
        facts(
            {
                DAEMON: b"{current}",
                new: b'{"log-level": "warn"}\n',
                SYSCTL: b"vm.max_map_count=262144\n",
            },
            {DAEMON: (old, new), SYSCTL: (marker,)},
        )
    )

    assert [(c.path, c.new) for c in plan.file_changes] == [
        (DAEMON, b'{"log-level": "warn"}\n'),
        (SYSCTL, None),
    ]
    assert plan.restart_docker and not plan.blockers


def test_only_one_file_when_asked():
    backup = f"{SYSCTL}.20261102T000000.000001Z.bak"
    plan = make_restore_plan(
        facts({SYSCTL: b"new\n", backup: b"old\n"}, {SYSCTL: (backup,)}), only_path=SYSCTL
    )

    assert [(c.path, c.new) for c in plan.file_changes] == [(SYSCTL, b"old\n")]
    assert not plan.restart_docker


def test_no_backup_is_a_clear_refusal():
    plan = make_restore_plan(facts({}, {}))

    assert plan.blockers == ("any file trains-nodeprep manages: no backup to restore on this node",)


def test_names_that_are_not_our_backups_are_ignored():
    plan = make_restore_plan(facts({}, {DAEMON: (f"{DAEMON}.bak", f"{DAEMON}.orig.bak")}))

    assert plan.blockers
