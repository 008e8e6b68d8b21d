"""Facts -> plan -> apply -> verify for each node, nodes in parallel, each independent.

One connection per node; `check` and a run with nothing to do cost one remote command,
a run that changes things three (facts, apply, verify).
"""

from __future__ import annotations

import datetime
import functools
import threading
import traceback as traceback_module
from collections.abc import Callable
from dataclasses import dataclass

from .apply import ApplyResult, apply_plan
from .errors import EXIT_CONNECTION, EXIT_DRIFT, EXIT_OK, ConnectionFailed, NodePrepError
from .facts import FactsParseError, NodeFacts, parse_facts, render_facts_script
from .model import DesiredState
from .plan import Plan, make_plan

FACTS_TIMEOUT = 60.0


@dataclass
class NodeOutcome:
    label: str
    # check: ready | drift | refused | unreachable | error
    # run:   unchanged | changed | planned | refused | failed | unreachable | error
    status: str = "error"
    facts: NodeFacts | None = None
    plan: Plan | None = None
    applied: ApplyResult | None = None
    error: str | None = None
    exec_count: int = 0
    traceback: str | None = None  # shown with --debug

    @property
    def exit_code(self) -> int:
        if self.status == "unreachable":
            return EXIT_CONNECTION
        if self.status in ("ready", "unchanged", "changed", "planned"):
            return EXIT_OK
        return EXIT_DRIFT


def overall_exit_code(outcomes: list[NodeOutcome]) -> int:
    codes = {outcome.exit_code for outcome in outcomes}
    for code in (EXIT_CONNECTION, EXIT_DRIFT):
        if code in codes:
            return code
    return EXIT_OK


def _say(node, state: str) -> None:
    """Tell the progress display what this node is doing (set by for_each_node)."""
    progress = getattr(node, "progress", None)
    if progress is not None:
        progress(state)


def gather_facts(node, desired: DesiredState) -> NodeFacts:
    _say(node, "reading facts")
    result = node.run_as_root(render_facts_script(desired), timeout=FACTS_TIMEOUT)
    try:
        return parse_facts(result.output)
    except FactsParseError as err:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.exit_status}"]
        raise NodePrepError(
            f"{node.label}: could not read the node's facts ({err}): {detail[0]}"
        ) from err


def check_node(node, desired: DesiredState) -> NodeOutcome:
    outcome = NodeOutcome(node.label)
    with _recorded(outcome, node):
        outcome.facts = gather_facts(node, desired)
        outcome.plan = make_plan(outcome.facts, desired)
        outcome.status = (
            "refused" if outcome.plan.blockers else "ready" if outcome.plan.ready else "drift"
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
    from .restore import make_restore_plan

    def differing(after: NodeFacts, plan: Plan) -> list[str]:
        return [
            f"{c.path} differs from its backup"
            for c in plan.file_changes
            if after.file(c.path).content != c.new
        ]

    return _converge(
        node,
        desired,
        lambda facts: make_restore_plan(facts, only_path),
        differing,
        "verification after restore failed",
        confirm=confirm,
        dry_run=False,
        restart_timeout=restart_timeout,
        keep_backups=keep_backups,
    )


def _converge(
    node,
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
                outcome.status, outcome.error = "refused", " | ".join(plan.blockers)
                return outcome
            if plan.empty:
                outcome.status = "unchanged"
                return outcome
            if dry_run:
                outcome.status = "planned"
                return outcome
            if _restarts_running_service(plan, facts) and not confirm(node.label, plan, facts):
                outcome.status = "refused"
                outcome.error = f"{' and '.join(plan.restarts)} must restart and that was not confirmed; rerun with --yes"
                return outcome
            _say(
                node,
                "applying"
                + (
                    f" ({' and '.join(plan.restarts)} restart{'s' if len(plan.restarts) == 1 else ''})"
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
            outcome.status = "failed"
            outcome.error = applied.failure + (
                " (every file this run changed was restored)" if applied.rolled_back else ""
            )
            return outcome
        _say(node, "verifying")
        problems = still_off(applied.after or gather_facts(node, desired), plan)
        if problems:
            outcome.status, outcome.error = "failed", f"{verify_failed}: " + "; ".join(problems)
            return outcome
        outcome.status = "changed"
    return outcome


def _restarts_running_service(plan: Plan, facts: NodeFacts) -> bool:
    containerd_running = bool(
        facts.containerd_unit and facts.containerd_unit.get("ActiveState") == "active"
    )
    return (plan.restart_docker and facts.docker_running) or (
        plan.restart_containerd and containerd_running
    )


def backup_stamp() -> str:
    """UTC time to the microsecond: backups sort by name in the order they were made."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class _recorded:
    """Turn a node's errors into its outcome, so one node never stops the others."""

    def __init__(self, outcome: NodeOutcome, node) -> None:
        self.outcome = outcome
        self.node = node

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self.outcome.exec_count = self.node.exec_count
        if error is None:
            return False
        if isinstance(error, ConnectionFailed):
            self.outcome.status = "unreachable"
            self.outcome.error = str(error)
        elif isinstance(error, NodePrepError):
            self.outcome.status = "error"
            self.outcome.error = str(error)
        else:
            self.outcome.status = "error"
            self.outcome.error = f"{self.node.label}: internal error {kind.__name__}: {error}; rerun with --debug and report it"
        self.outcome.traceback = "".join(traceback_module.format_exception(kind, error, traceback))
        return True


def for_each_node(
    nodes: list, action: Callable, parallel: int, progress: Callable[[str, str], None] | None = None
) -> list[NodeOutcome]:
    """Run `action(node)` on every node, at most `parallel` at once; outcomes in the nodes' order.

    `progress(label, state)` hears each node's steps and its final status.
    """

    def one(node) -> NodeOutcome:
        try:
            outcome = action(node)
        finally:
            node.close()
        if progress is not None:
            progress(node.label, outcome.status)
        return outcome

    if progress is not None:
        for node in nodes:
            node.progress = functools.partial(progress, node.label)
            progress(node.label, "waiting")
    if len(nodes) <= 1 or parallel <= 1:
        return [one(node) for node in nodes]
    return _in_threads(one, nodes, min(parallel, len(nodes)))


def _in_threads(one: Callable, nodes: list, workers: int) -> list:
    """`one(node)` for every node in `workers` threads, results in the nodes' order.

    Every thread is started before any node begins, then all are let go at once: a thread
    started while others already connect waits for the GIL to say it has started (with 50 nodes,
    the last one began a third of a second late behind ThreadPoolExecutor's one-by-one starts)."""
    results: list = [None] * len(nodes)
    errors: list[BaseException] = []
    pending = iter(enumerate(nodes))
    take = threading.Lock()
    go = threading.Event()

    def worker() -> None:
        go.wait()
        while True:
            with take:
                item = next(pending, None)
            if item is None:
                return
            index, node = item
            try:
                results[index] = one(node)
            except (
                BaseException
            ) as err:  # action() records node errors itself: this is a bug, re-raised below
                errors.append(err)

    threads = [
        threading.Thread(target=worker, name=f"node-{i}", daemon=True) for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
