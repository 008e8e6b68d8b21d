"""The converge loop on a fake node (tests/unit/fakes.py): what is sent, in how many commands,
and the outcome, for check, run (dry run, confirmation, stale retry, verification, rollback)
and restore. The scripts themselves run on real nodes in tests/integration."""

from __future__ import annotations

from tests.unit.fakes import (
    DAEMON_JSON,
    DESIRED,
    STALE,
    SYSCTL_FILE,
    FakeNode,
    apply_output,
    facts_output,
    ok,
    step,
)
from trains_nodeprep.engine.converge import check_node, restore_node, run_node
from trains_nodeprep.engine.types import NodeStatus
from trains_nodeprep.errors import ConnectionFailed
from trains_nodeprep.node import Result
from trains_nodeprep.remote.scripts import render_facts_script

DRIFTING = facts_output(files={}, max_map_count=65530)
APPLIED = [
    step("write", DAEMON_JSON, "ok", DAEMON_JSON + ".20261203T000000.000000Z.absent.bak"),
    step("write", SYSCTL_FILE, "ok", SYSCTL_FILE + ".20261203T000000.000000Z.absent.bak"),
    step("sysctl", "vm.max_map_count", "ok", "vm.max_map_count = 262144"),
    step("restart", "docker", "ok", "4242"),
    step("done", "-"),
]


def run(node: FakeNode, *, confirm=lambda *_: True, dry_run: bool = False):
    return run_node(
        node, DESIRED, confirm=confirm, dry_run=dry_run, restart_timeout=60, keep_backups=5
    )


def test_check_is_one_read_only_command():
    node = FakeNode([ok(facts_output())])

    outcome = check_node(node, DESIRED)

    assert outcome.status == NodeStatus.READY and outcome.exec_count == 1
    assert node.sent[0].script == render_facts_script(DESIRED)


def test_check_of_a_drifting_node_says_what_is_off():
    outcome = check_node(FakeNode([ok(DRIFTING)]), DESIRED)

    assert outcome.status == NodeStatus.DRIFT and outcome.exit_code == 1
    assert outcome.plan is not None
    off = {r.id: r.actual for r in outcome.plan.requirements if not r.ok}
    assert off["sysctl.vm.max_map_count"] == "65530"
    assert off["docker.default-ulimit.nofile"] == "unset"


def test_a_ready_node_is_one_command_and_unchanged():
    node = FakeNode([ok(facts_output())])

    outcome = run(node, confirm=lambda *_: (_ for _ in ()).throw(AssertionError("asked")))

    assert outcome.status == NodeStatus.UNCHANGED and outcome.exec_count == 1


def test_a_changing_run_is_two_commands_apply_then_verification_in_the_same_one():
    confirmed = []
    node = FakeNode([ok(DRIFTING), ok(apply_output(APPLIED, after=facts_output()))])

    outcome = run(node, confirm=lambda label, plan, facts: confirmed.append(plan.restarts) or True)

    assert outcome.status == NodeStatus.CHANGED, outcome.error
    assert outcome.exec_count == 2 and confirmed == [("docker",)]
    apply_script = node.sent[1].script
    assert f"put {DAEMON_JSON} -" in apply_script and "restart docker 60" in apply_script
    assert apply_script.rstrip().endswith(")") and render_facts_script(DESIRED) in apply_script
    assert outcome.applied is not None and outcome.applied.restarted_docker
    assert len(outcome.applied.backups) == 2


def test_dry_run_sends_nothing_but_the_facts():
    node = FakeNode([ok(DRIFTING)])

    outcome = run(node, dry_run=True)

    assert outcome.status == NodeStatus.PLANNED and outcome.exec_count == 1


def test_a_restart_not_confirmed_refuses_the_node_and_writes_nothing():
    node = FakeNode([ok(DRIFTING)])

    outcome = run(node, confirm=lambda *_: False)

    assert outcome.status == NodeStatus.REFUSED and outcome.exec_count == 1
    assert outcome.error is not None and "rerun with --yes" in outcome.error


def test_a_stale_plan_is_planned_again_from_fresh_facts():
    node = FakeNode(
        [ok(DRIFTING), STALE, ok(DRIFTING), ok(apply_output(APPLIED, after=facts_output()))]
    )

    outcome = run(node)

    assert outcome.status == NodeStatus.CHANGED and outcome.exec_count == 4
    assert node.sent[2].script == render_facts_script(DESIRED)


def test_what_is_still_off_after_the_change_fails_the_node():
    still_low = facts_output(max_map_count=65530)
    node = FakeNode([ok(DRIFTING), ok(apply_output(APPLIED, after=still_low))])

    outcome = run(node)

    assert outcome.status == NodeStatus.FAILED
    assert outcome.error == ("verification after apply failed: sysctl.vm.max_map_count is 65530")


def test_a_verification_read_cut_short_is_read_again_on_its_own():
    cut = facts_output(complete=False)
    node = FakeNode([ok(DRIFTING), ok(apply_output(APPLIED, after=cut)), ok(facts_output())])

    outcome = run(node)

    assert outcome.status == NodeStatus.CHANGED and outcome.exec_count == 3


def test_a_rolled_back_change_fails_the_node_and_says_the_files_were_restored():
    failed = [
        step("write", DAEMON_JSON, "ok", DAEMON_JSON + ".20261203T000000.000000Z.absent.bak"),
        step("restart", "docker", "fail", "docker did not answer within 60 s after the restart"),
        step("restore", DAEMON_JSON),
        step(
            "rollback", "docker", "ok", "files restored, docker restarted with the previous config"
        ),
    ]
    node = FakeNode([ok(DRIFTING), Result(1, apply_output(failed), "")])

    outcome = run(node)

    assert outcome.status == NodeStatus.FAILED and outcome.exec_count == 2
    assert outcome.error is not None
    assert outcome.error.startswith("docker: docker did not answer within 60 s")
    assert outcome.error.endswith("(every file this run changed was restored)")


def test_an_apply_script_that_stops_early_is_an_error_of_that_node():
    node = FakeNode([ok(DRIFTING), Result(0, step("write", DAEMON_JSON), "Killed")])

    outcome = run(node)

    assert outcome.status == NodeStatus.ERROR
    assert outcome.error is not None and "the apply script stopped early" in outcome.error


def test_an_unreachable_node_exits_3_and_the_others_are_not_stopped():
    def refuse(_script: str) -> Result:
        raise ConnectionFailed("fake1: connection refused; check the host and port")

    outcome = check_node(FakeNode([refuse]), DESIRED)

    assert outcome.status == NodeStatus.UNREACHABLE and outcome.exit_code == 3


def test_restore_puts_back_the_newest_backup_set_and_verifies_it():
    stamp = "20261203T000000.000000Z"
    backup = f"{DAEMON_JSON}.{stamp}.bak"
    before = facts_output(
        files={DAEMON_JSON: b'{"debug": true}\n', backup: b"{}\n"},
        backups={DAEMON_JSON: [backup]},
    )
    restored = [step("write", DAEMON_JSON, "ok", f"{DAEMON_JSON}.x.bak"), step("done", "-")]
    after = facts_output(files={DAEMON_JSON: b"{}\n"})
    node = FakeNode([ok(before), ok(apply_output(restored, after=after))])

    outcome = restore_node(
        node, DESIRED, confirm=lambda *_: True, only_path=None, restart_timeout=60, keep_backups=5
    )

    assert outcome.status == NodeStatus.CHANGED and outcome.exec_count == 2
    assert outcome.plan is not None and outcome.plan.restarts == ("docker",)
    assert f"put {DAEMON_JSON} " in node.sent[1].script
