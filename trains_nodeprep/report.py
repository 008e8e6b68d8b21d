"""Render outcomes for people (text, diffs) and machines (JSON, JUnit XML).

No I/O but the console given."""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .engine.converge import NodeOutcome
from .engine.types import Plan, Requirement

if TYPE_CHECKING:
    from rich.console import Console

JSON_SCHEMA = "trains-nodeprep/v1"

_STYLE = {
    "ready": "green",
    "unchanged": "green",
    "changed": "yellow",
    "planned": "cyan",
    "drift": "red",
    "refused": "red",
    "failed": "bold red",
    "unreachable": "bold red",
    "error": "bold red",
}


class Progress:
    """One line per node with its state: live in a terminal, plain lines otherwise."""

    def __init__(self, stream, live_console=None) -> None:
        import threading

        self.stream = stream
        self.live_console = live_console
        self.states: dict[str, str] = {}
        self.lock = threading.Lock()
        self.live: Any = None  # a rich Live while the table shows

    def __enter__(self) -> Progress:
        if self.live_console is not None:
            from rich.live import Live

            # Live's own refresh thread renders the table 8 times a second; node threads only
            # set states.
            self.live = Live(
                console=self.live_console,
                transient=True,
                refresh_per_second=8,
                get_renderable=self._render,
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, label: str, state: str) -> None:
        # Called from every node's thread: a dict write, or one plain line (no rich rendering
        # on this path).
        with self.lock:
            self.states[label] = state
            if self.live is None and state != "waiting":
                self.stream.write(f"{label}: {state}\n")
                self.stream.flush()

    def _render(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        with self.lock:
            states = list(self.states.items())
        for label, state in states:
            table.add_row(label, f"[{_STYLE.get(state, 'cyan')}]{state}[/]")
        return table


def _status(console: Console, label: str, status: str, detail: str = "") -> None:
    from rich.text import Text

    line = Text()
    line.append(f"{status:<11}", style=_STYLE.get(status, ""))
    line.append(f" {label}")
    if detail:
        line.append(f"  {detail}")
    console.print(line, highlight=False, soft_wrap=True)


# The requirement table: "  ok     ID  expected X  actual Y  (WHERE)", each column wrapping
# inside itself (a long id or value folds onto the next line of its own column).
_INDENT = 2
_STATUS_WIDTH = len("drift")  # fixed, so "ok" rows line up the same with or without drift
_GAP = 2
_ID_SHARE = 0.4  # of the width left for id, expected, actual and where: ids fold last


def _requirement_lines(console: Console, requirements: Sequence[Requirement]) -> None:
    from rich.table import Table
    from rich.text import Text

    if not requirements:
        return
    table = Table.grid(padding=(0, _GAP), collapse_padding=True, pad_edge=False)
    table.add_column(width=_INDENT - _GAP)  # empty: the gap after it is the indent
    table.add_column(width=_STATUS_WIDTH, no_wrap=True)
    table.add_column(overflow="fold", width=_id_width(console.width, requirements))
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    table.add_column(overflow="fold", style="dim")
    for req in requirements:
        table.add_row(
            "",
            Text("ok" if req.ok else "drift", style="green" if req.ok else "red"),
            Text(req.id),
            Text(f"expected {req.expected}"),
            Text(f"actual {req.actual}"),
            Text(f"({req.where})" if req.where else ""),
        )
    console.print(table, highlight=False)


def _id_width(console_width: int, requirements: Sequence[Requirement]) -> int:
    """The id column: as wide as the longest id, unless that leaves too little for the values."""
    longest = max(len(req.id) for req in requirements)
    rest = console_width - _INDENT - _STATUS_WIDTH - 4 * _GAP  # for id, expected, actual, where
    return max(1, min(longest, int(rest * _ID_SHARE)))


def print_cluster(console, cluster) -> None:
    if cluster is None:
        return
    _status(
        console,
        "cluster",
        "ready" if cluster.ready else "drift",
        f"context {cluster.context or '(current)'}",
    )
    _requirement_lines(console, cluster.requirements)
    for note in cluster.notes:
        console.print(f"  note   {note}", highlight=False, soft_wrap=True)


def print_deploy(console, cluster) -> None:
    if cluster.error:
        _status(console, "cluster", "failed", cluster.error)
        return
    _status(console, "cluster", "changed", "deployed trains-server (kubectl apply -k)")
    for failure in cluster.rollout_failures:
        _status(console, "cluster", "failed", f"rollout: {failure}")
    for name, url in cluster.urls.items():
        console.print(f"  {name:<6} {url}", highlight=False)
    for req in cluster.health:
        if not req.ok:
            console.print(
                f"  note   {req.id} does not answer (no URL shown): {req.actual};"
                f" `trains-nodeprep check` fails until it does",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )


def access_lines(access, *, planned: bool = False) -> list[str]:
    """How users reach trains-server: with --domain the Ingress and the three DNS records;
    always the mapping a load balancer in front of the node needs (to the NodePorts)."""
    lines = []
    if access.options is not None:
        options = access.options
        rules = ", ".join(f"{r.host} -> {r.service}:{r.port}" for r in access.rules)
        extras = [f"class {options.ingress_class}"] if options.ingress_class else []
        extras += [f"TLS secret {options.tls_secret}"] if options.tls_secret else []
        lines.append(
            f"ingress  {'would apply' if planned else 'applied'} Ingress {access.namespace}/"
            f"{access.ingress_name}: {rules}" + (f" ({', '.join(extras)})" if extras else "")
        )
        lines += [f"dns      {record.name} -> {record.points_to}" for record in access.dns]
        lines.append(
            "         (DNS records: to where the ingress controller listens, this node or the"
            " load balancer in front of it)"
        )
    forwards = ", ".join(f"{f.host or f.endpoint} -> {f.target}" for f in access.load_balancer)
    lines.append(f"lb       for a load balancer: {forwards} (the NodePorts)")
    return lines


def print_access(console, access, *, planned: bool = False) -> None:
    if access is None:
        return
    console.print("access trains-server:", highlight=False)
    for line in access_lines(access, planned=planned):
        console.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)


def print_cluster_changes(console, cluster) -> None:
    """What `apply -k` would change, object by object (plan): the image tags, then a unified
    diff of each object that changes; an object to create is named, its body is the tree's."""
    from rich.syntax import Syntax

    if cluster is None or cluster.facts is None or cluster.facts.tree is None:
        return
    if cluster.facts.live is None:
        if cluster.facts.server_version is not None:
            why = cluster.facts.live_error or "not read"
            console.print(f"  note   no cluster diff: the live objects: {why}", highlight=False)
        return
    total = len(cluster.facts.tree.objects)
    counts = {a: sum(c.action == a for c in cluster.changes) for a in ACTIONS}
    unchanged = total - len(cluster.changes)
    summary = ", ".join(f"{n} to {a}" for a, n in counts.items() if n) or "nothing to change"
    _status(
        console,
        "cluster",
        "planned" if cluster.changes else "unchanged",
        f"kubectl apply -k {cluster.tree_label or cluster.kustomize_dir}: {summary},"
        f" {unchanged} unchanged",
    )
    for image in cluster.images:
        console.print(f"  image  {image.describe()}", highlight=False, soft_wrap=True)
    for change in cluster.changes:
        console.print(f"  {change.action}  {change.obj.ref}", highlight=False, soft_wrap=True)
        if change.action != "create" and change.diff:
            console.print(
                Syntax(change.diff, "diff", theme="ansi_dark", background_color="default")
            )


ACTIONS = ("create", "configure", "replace")


def print_pod_restarts(console, restarts, *, dry_run: bool) -> None:
    """One line per workload whose pods run with limits below the playbook's."""
    for restart in restarts:
        ref = f"{restart.workload.ref} (namespace {restart.workload.namespace})"
        if dry_run:
            detail = (
                f"would restart {ref}: {restart.reason}"
                if restart.workload.restartable
                else f"cannot restart {ref}: {restart.reason}; {restart.manual}"
            )
            _status(console, "cluster", "planned", detail)
        elif restart.done and restart.error is None:
            after = f"; now {'; '.join(restart.after)}" if restart.after else ""
            _status(console, "cluster", "changed", f"restarted {ref}: {restart.reason}{after}")
        elif restart.done:
            _status(console, "cluster", "failed", f"restarted {ref}, but {restart.error}")
        else:
            status = "failed" if "failed" in (restart.error or "") else "refused"
            _status(console, "cluster", status, f"{ref}: {restart.reason}; {restart.error}")


def print_check(console, outcomes: list[NodeOutcome]) -> None:
    from rich.text import Text

    for outcome in outcomes:
        _status(console, outcome.label, outcome.status, outcome.error or "")
        if outcome.plan is None:
            continue
        if outcome.plan.runtime is not None:
            console.print(
                Text("  runtime  ", style="cyan") + Text(outcome.plan.runtime.describe()),
                highlight=False,
                soft_wrap=True,
            )
        _requirement_lines(console, outcome.plan.requirements)
        for blocker in outcome.plan.blockers:
            console.print(
                Text("  refused  ", style="red") + Text(blocker), highlight=False, soft_wrap=True
            )
    ready = sum(o.status == "ready" for o in outcomes)
    console.print(f"{ready} of {len(outcomes)} node(s) ready", highlight=False)


def _diff(change) -> str:
    old = change.old.text if change.old.content is not None else ""
    new = change.new.decode("utf-8", errors="replace") if change.new is not None else ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=change.path if change.old.exists else "/dev/null",
        tofile=change.path if change.new is not None else "/dev/null",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def plan_commands(plan: Plan, init_system: str) -> list[str]:
    from .requirements.registry import services

    commands = [f"sysctl -w {w.key}={w.new}" for w in plan.sysctl_writes]
    specs = services()
    for service in plan.restarts:
        commands += specs[service].commands(init_system)
    return commands


def restart_warnings(plan: Plan) -> list[str]:
    """What each restart does to the workloads on the node, in words."""
    from .requirements.registry import services

    specs = services()
    return [specs[service].warning(plan.reason(service)) for service in plan.restarts]


def print_plan(console, outcomes: list[NodeOutcome]) -> None:
    from rich.text import Text

    for outcome in outcomes:
        plan = outcome.plan
        if plan is None or not (
            plan.file_changes or plan.sysctl_writes or plan.restarts or plan.left_stopped
        ):
            _status(
                console,
                outcome.label,
                outcome.status if outcome.status != "planned" else "unchanged",
                outcome.error or "nothing to change",
            )
            continue
        _status(
            console,
            outcome.label,
            "planned",
            f"{len(plan.file_changes)} file(s), {len(plan.sysctl_writes)} sysctl write(s)",
        )
        for change in plan.file_changes:
            action = "remove" if change.new is None else "modify" if change.old.exists else "create"
            backup = (
                f" (backup {change.path}.<UTC time>.bak)" if change.old.exists else " (new file)"
            )
            console.print(f"  {action} {change.path}{backup}", highlight=False)
            if change.secret:
                console.print("    (content not shown: it holds passwords)", highlight=False)
                continue
            for line in _diff(change).splitlines():
                style = (
                    "green"
                    if line.startswith("+")
                    else "red"
                    if line.startswith("-")
                    else "cyan"
                    if line.startswith("@@")
                    else ""
                )
                console.print(Text("    " + line, style=style), highlight=False, soft_wrap=True)
        if plan.left_stopped and not plan.file_changes:
            console.print("  run    systemctl daemon-reload", highlight=False)
        for command in plan_commands(plan, outcome.facts.init_system if outcome.facts else ""):
            console.print(f"  run    {command}", highlight=False)
        for warning in [*restart_warnings(plan), *plan.notes]:
            console.print(f"  note   {warning}", highlight=False)


def print_scripts(console: Console, facts_script: str, applies: dict[str, str]) -> None:
    """The remote scripts byte for byte as they are sent (written raw: rich would expand their
    tabs): the facts script, then each node's apply script."""
    scripts = {"the facts script, read-only, the same for every node": facts_script}
    scripts.update({f"the apply script for {label}": script for label, script in applies.items()})
    for title, script in scripts.items():
        console.file.write(f"# {title} ({len(script.encode())} bytes)\n{script}")
    if not applies:
        console.file.write("# no node would be changed: no apply script\n")
    console.file.flush()


def print_run(console, outcomes: list[NodeOutcome]) -> None:
    for outcome in outcomes:
        detail = outcome.error or ""
        if outcome.status == "changed" and outcome.applied:
            done = [f"wrote {s.subject}" for s in outcome.applied.steps if s.kind == "write"]
            done += [f"removed {s.subject}" for s in outcome.applied.steps if s.kind == "remove"]
            done += [f"set {s.subject}" for s in outcome.applied.steps if s.kind == "sysctl"]
            done += [f"reloaded {s.subject}" for s in outcome.applied.steps if s.kind == "reload"]
            done += [f"restarted {service}" for service in outcome.applied.restarted]
            backups = outcome.applied.backups
            detail = (
                ", ".join(done)
                + (f"; backups: {', '.join(backups)}" if backups else "")
                + "; verified"
            )
            detail += "".join(
                f"; note: {s.message}" for s in outcome.applied.steps if s.status == "info"
            )
            notes = outcome.plan.notes if outcome.plan else ()
            detail += "".join(f"; note: {note}" for note in notes)
        elif outcome.status == "unchanged":
            detail = "already ready: nothing written, nothing restarted"
        _status(console, outcome.label, outcome.status, detail)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    console.print(
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), highlight=False
    )


def outcome_json(outcome: NodeOutcome) -> dict:
    plan = outcome.plan
    data = {
        "host": outcome.label,
        "status": outcome.status,
        "error": outcome.error,
        "requirements": [_requirement_json(r) for r in (plan.requirements if plan else ())],
        "blockers": list(plan.blockers) if plan else [],
        "changes": [
            {
                "path": c.path,
                "action": "remove" if c.new is None else "modify" if c.old.exists else "create",
                "restarts": c.restarts,
                "restarts_docker": c.restarts_docker,
                "restarts_containerd": c.restarts_containerd,
            }
            for c in (plan.file_changes if plan else ())
        ],
        "commands": plan_commands(plan, outcome.facts.init_system if outcome.facts else "")
        if plan
        else [],
        "restarts": list(plan.restarts) if plan else [],
        "notes": list(plan.notes) if plan else [],
        "restart_docker": bool(plan and plan.restart_docker),
        "restart_containerd": bool(plan and plan.restart_containerd),
        "runtime": _runtime_json(plan.runtime if plan else None),
        "remote_commands": outcome.exec_count,
    }
    if outcome.applied is not None:
        data["applied"] = {
            "backups": list(outcome.applied.backups),
            "restarted": list(outcome.applied.restarted),
            "restarted_docker": outcome.applied.restarted_docker,
            "restarted_containerd": "containerd" in outcome.applied.restarted,
            "rolled_back": outcome.applied.rolled_back,
            "notes": [s.message for s in outcome.applied.steps if s.status == "info"],
        }
    return data


def _runtime_json(choice) -> dict | None:
    if choice is None:
        return None
    return {
        "kubelet": choice.kubelet,
        "targets": list(choice.targets),
        "evidence": choice.evidence,
        "distribution": choice.distribution,
    }


def _requirement_json(req) -> dict:
    return {
        "id": req.id,
        "expected": req.expected,
        "actual": req.actual,
        "ok": req.ok,
        "where": req.where,
    }


def cluster_json(cluster) -> dict | None:
    if cluster is None:
        return None
    return {
        "context": cluster.context,
        "ready": cluster.ready,
        "requirements": [_requirement_json(r) for r in cluster.requirements],
        "kustomization": cluster.kustomize_dir,
        "deployed": cluster.deployed,
        "error": cluster.error,
        "rollout_failures": cluster.rollout_failures,
        "urls": cluster.urls,
        "notes": cluster.notes,
        "pod_restarts": [_pod_restart_json(r) for r in cluster.pod_restarts],
        "health": [_requirement_json(r) for r in cluster.health],
        "access": _access_json(cluster.access),
        "diff": [
            {"object": c.obj.ref, "action": c.action, "diff": c.diff} for c in cluster.changes
        ],
        "images": [{"container": i.container, "old": i.old, "new": i.new} for i in cluster.images],
        "replace": [
            {"object": c.obj.ref, "field": c.field, "replaceable": c.replaceable}
            for c in cluster.replacements
        ],
        "replaced": cluster.replaced,
    }


def _access_json(access) -> dict | None:
    if access is None:
        return None
    options = access.options
    return {
        "domain": options.domain if options else None,
        "ingress": None
        if options is None
        else {
            "namespace": access.namespace,
            "name": access.ingress_name,
            "class": options.ingress_class,
            "tls_secret": options.tls_secret,
            "rules": [{"host": r.host, "service": r.service, "port": r.port} for r in access.rules],
        },
        "dns": [{"name": r.name, "points_to": r.points_to} for r in access.dns],
        "load_balancer": [
            {"endpoint": f.endpoint, "host": f.host, "node_port": f.node_port, "target": f.target}
            for f in access.load_balancer
        ],
    }


def _pod_restart_json(restart) -> dict:
    return {
        "workload": restart.workload.ref,
        "namespace": restart.workload.namespace,
        "reason": restart.reason,
        "done": restart.done,
        "pods": list(restart.pods),
        "command": restart.command,
        "error": restart.error,
        "after": restart.after,
    }


def outcomes_json(command: str, outcomes: list[NodeOutcome], ok: bool, cluster=None) -> dict:
    return {
        "schema": JSON_SCHEMA,
        "command": command,
        "ok": ok,
        "cluster": cluster_json(cluster),
        "nodes": [outcome_json(o) for o in outcomes],
    }


def render_junit(outcomes: list[NodeOutcome], cluster=None) -> str:
    """One test case per requirement per node (and of the cluster); an unreachable node is one
    errored case."""
    suite = ET.Element("testsuite", name="trains-nodeprep check")
    tests = failures = errors = 0
    for req in cluster.requirements if cluster else ():
        case = ET.SubElement(suite, "testcase", classname="trains-nodeprep.cluster", name=req.id)
        tests += 1
        if not req.ok:
            failures += 1
            ET.SubElement(
                case, "failure", message=f"expected {req.expected}, actual {req.actual}"
            ).text = f"{req.id}: expected {req.expected}, actual {req.actual} ({req.where})"
    for outcome in outcomes:
        classname = f"trains-nodeprep.{outcome.label}"
        if outcome.plan is None:
            case = ET.SubElement(suite, "testcase", classname=classname, name="node.reachable")
            ET.SubElement(case, "error", message=outcome.error or outcome.status)
            tests += 1
            errors += 1
            continue
        for req in outcome.plan.requirements:
            case = ET.SubElement(suite, "testcase", classname=classname, name=req.id)
            tests += 1
            if not req.ok:
                failures += 1
                failure = ET.SubElement(
                    case, "failure", message=f"expected {req.expected}, actual {req.actual}"
                )
                failure.text = (
                    f"{req.id} on {outcome.label}: expected {req.expected}, "
                    f"actual {req.actual} ({req.where})"
                )
        for index, blocker in enumerate(outcome.plan.blockers, 1):
            case = ET.SubElement(
                suite, "testcase", classname=classname, name=f"config.refused.{index}"
            )
            ET.SubElement(case, "failure", message=blocker)
            tests += 1
            failures += 1
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
