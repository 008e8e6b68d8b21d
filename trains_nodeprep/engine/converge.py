"""Facts -> plan -> apply -> verify, for one node; each node's errors become its outcome.

One connection per node; `check` and a run with nothing to do cost one remote command, a run
that changes things two (facts; then apply, with the verification read at its end).
"""

from __future__ import annotations

import datetime
import traceback as traceback_module
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import EXIT_CONNECTION, EXIT_DRIFT, EXIT_OK, ConnectionFailed, NodePrepError
from ..model import DesiredState
from ..remote.scripts import render_facts_script
from ..requirements.registry import services
from .apply import ApplyResult, apply_plan
from .facts import NodeFacts
from .parse import FactsParseError, parse_facts
from .planner import make_plan
from .restore import make_restore_plan
from .types import NodeStatus, Plan

if TYPE_CHECKING:
    from ..node import Node

FACTS_TIMEOUT = 60.0


SUCCESSES = (NodeStatus.READY, NodeStatus.UNCHANGED, NodeStatus.CHANGED, NodeStatus.PLANNED)


@dataclass
class NodeOutcome:
    label: str
    # check: ready | drift | refused | unreachable | error
    # run:   unchanged | changed | planned | refused | failed | unreachable | error
    status: NodeStatus = NodeStatus.ERROR
    facts: NodeFacts | None = None
    plan: Plan | None = None
    applied: ApplyResult | None = None
    error: str | None = None
    exec_count: int = 0
    traceback: str | None = None  # shown with --debug

    @property
    def exit_code(self) -> int:
        if self.status == NodeStatus.UNREACHABLE:
            return EXIT_CONNECTION
        if self.status in SUCCESSES:
            return EXIT_OK
        return EXIT_DRIFT


def overall_exit_code(outcomes: list[NodeOutcome]) -> int:
    codes = {outcome.exit_code for outcome in outcomes}
    for code in (EXIT_CONNECTION, EXIT_DRIFT):
        if code in codes:
            return code
    return EXIT_OK


def _say(node: Node, state: str) -> None:
    """Tell the progress display what this node is doing (set by for_each_node)."""
    progress = getattr(node, "progress", None)
    if progress is not None:
        progress(state)


def gather_facts(node: Node, desired: DesiredState) -> NodeFacts:
    _say(node, "reading facts")
    result = node.run_as_root(render_facts_script(desired), timeout=FACTS_TIMEOUT)
    try:
        return parse_facts(result.output)
    except FactsParseError as err:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.exit_status}"]
        raise NodePrepError(
            f"{node.label}: could not read the node's facts ({err}): {detail[0]}"
        ) from err


def check_node(node: Node, desired: DesiredState) -> NodeOutcome:
    outcome = NodeOutcome(node.label)
    with _recorded(outcome, node):
        outcome.facts = gather_facts(node, desired)
        outcome.plan = make_plan(outcome.facts, desired)
        outcome.status = (
            NodeStatus.REFUSED
            if outcome.plan.blockers
            else NodeStatus.READY
            if outcome.plan.ready
            else NodeStatus.DRIFT
        )
    return outcome


# confirm(label, plan, facts) -> True to go ahead with a docker restart
Confirm = Callable[[str, Plan, NodeFacts], bool]


MAX_ATTEMPTS = 3  # a concurrent change between facts and apply makes us plan again


def run_node(
    node,
    desired: DesiredState,
    *,
    confirm: Confirm,
    dry_run: bool,
    restart_timeout: int,
    keep_backups: int,
) -> NodeOutcome:
    def still_off(after: NodeFacts, _plan: Plan) -> list[str]:
        again = make_plan(after, desired)
        if again.empty:
            return []
        return (
            [f"{r.id} is {r.actual}" for r in again.requirements if not r.ok]
            or list(again.blockers)
            or ["the plan is still not empty"]
        )

    return _converge(
        node,
        desired,
        lambda facts: make_plan(facts, desired),
        still_off,
        "verification after apply failed",
        confirm=confirm,
        dry_run=dry_run,
        restart_timeout=restart_timeout,
        keep_backups=keep_backups,
    )


def restore_node(
    node,
    desired: DesiredState,
    *,
    confirm: Confirm,
    only_path: str | None,
    restart_timeout: int,
    keep_backups: int,
) -> NodeOutcome:
    """Put back the newest backup set; verify that each file now has the backed-up content."""

    def differing(after: NodeFacts, plan: Plan) -> list[str]:
        return [
            f"{c.path} differs from its backup"
            for c in plan.file_changes
            if after.file(c.path).content != c.new
        ]

    return _converge(
        node,
        desired,
        lambda facts: make_restore_plan(facts, only_path, desired),
        differing,
        "verification after restore failed",
        confirm=confirm,
        dry_run=False,
        restart_timeout=restart_timeout,
        keep_backups=keep_backups,
    )


def _converge(
    node: Node,
    desired: DesiredState,
    make: Callable[[NodeFacts], Plan],
    still_off: Callable[[NodeFacts, Plan], list[str]],
    verify_failed: str,
    *,
    confirm: Confirm,
    dry_run: bool,
    restart_timeout: int,
    keep_backups: int,
) -> NodeOutcome:
    """facts -> plan -> (confirm) -> apply -> facts again, which must show nothing still off.

    The second read of the facts runs at the end of the apply command (one round trip less), or
    on its own if that read did not come back whole."""
    outcome = NodeOutcome(node.label)
    with _recorded(outcome, node):
        for _attempt in range(MAX_ATTEMPTS):
            outcome.facts = facts = gather_facts(node, desired)
            outcome.plan = plan = make(facts)
            if plan.blockers:
                outcome.status, outcome.error = NodeStatus.REFUSED, " | ".join(plan.blockers)
                return outcome
            if plan.empty:
                outcome.status = NodeStatus.UNCHANGED
                return outcome
            if dry_run:
                outcome.status = NodeStatus.PLANNED
                return outcome
            if _restarts_running_service(plan, facts) and not confirm(node.label, plan, facts):
                outcome.status = NodeStatus.REFUSED
                outcome.error = (
                    f"{' and '.join(plan.restarts)} must restart and that was not confirmed; "
                    "rerun with --yes"
                )
                return outcome
            _say(
                node,
                "applying"
                + (
                    f" ({' and '.join(plan.restarts)} "
                    f"restart{'s' if len(plan.restarts) == 1 else ''})"
                    if plan.restarts
                    else ""
                ),
            )
            outcome.applied = applied = apply_plan(
                node,
                plan,
                init_system=facts.init_system,
                stamp=backup_stamp(),
                restart_timeout=restart_timeout,
                keep_backups=keep_backups,
                facts_script=render_facts_script(desired),
            )
            if not applied.stale:
                break
        if not applied.ok:
            outcome.status = NodeStatus.FAILED
            outcome.error = applied.failure + (
                " (every file this run changed was restored)" if applied.rolled_back else ""
            )
            return outcome
        _say(node, "verifying")
        problems = still_off(applied.after or gather_facts(node, desired), plan)
        if problems:
            outcome.status, outcome.error = (
                NodeStatus.FAILED,
                f"{verify_failed}: " + "; ".join(problems),
            )
            return outcome
        outcome.status = NodeStatus.CHANGED
    return outcome


def _restarts_running_service(plan: Plan, facts: NodeFacts) -> bool:
    specs = services()
    return any(specs[service].running(facts) for service in plan.restarts)


def backup_stamp() -> str:
    """UTC time to the microsecond: backups sort by name in the order they were made."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class _recorded:
    """Turn a node's errors into its outcome, so one node never stops the others."""

    def __init__(self, outcome: NodeOutcome, node: Node) -> None:
        self.outcome = outcome
        self.node = node

    def __enter__(self) -> _recorded:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self.outcome.exec_count = self.node.exec_count
        if error is None:
            return False
        if isinstance(error, ConnectionFailed):
            self.outcome.status = NodeStatus.UNREACHABLE
            self.outcome.error = str(error)
        elif isinstance(error, NodePrepError):
            self.outcome.status = NodeStatus.ERROR
            self.outcome.error = str(error)
        else:
            self.outcome.status = NodeStatus.ERROR
            self.outcome.error = (
                f"{self.node.label}: internal error {type(error).__name__}: {error}; "
                "rerun with --debug and report it"
            )
        self.outcome.traceback = "".join(traceback_module.format_exception(kind, error, traceback))
        return True
