"""Carry out a Plan on a node in one remote command, and read what each step did.

The script (remote/scripts.py) replaces each file only if it still has the content the facts
saw (else nothing is written and the run plans again), atomically, after a timestamped backup
beside it; services restart only after every write succeeded, and if one does not answer, every
file is put back byte for byte. It ignores SIGHUP: a dropped connection cannot stop it halfway.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ApplyError
from ..remote.protocol import LOCK_WAIT_SECONDS, VERIFY_MARKER, decode_records
from ..remote.scripts import render_apply_script, secrets_payload
from .facts import NodeFacts
from .parse import FactsParseError, parse_facts
from .types import Plan, Service, StepKind, StepStatus

if TYPE_CHECKING:
    from ..node import Node


@dataclass(frozen=True)
class Step:
    kind: str  # a StepKind
    subject: str  # the file, key or service
    status: StepStatus | str
    message: str


@dataclass(frozen=True)
class ApplyResult:
    exit_status: int
    steps: tuple[Step, ...]
    after: NodeFacts | None = None  # the node read again after the change (None: read it apart)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not any(s.status == "fail" for s in self.steps)

    @property
    def stale(self) -> bool:
        return any(s.kind == StepKind.STALE for s in self.steps)

    @property
    def backups(self) -> tuple[str, ...]:
        kinds = (StepKind.WRITE, StepKind.REMOVE)
        return tuple(s.message for s in self.steps if s.kind in kinds and s.message)

    @property
    def restarted(self) -> tuple[str, ...]:
        """The services this apply restarted: docker, containerd."""
        return tuple(
            s.subject for s in self.steps if s.kind == StepKind.RESTART and s.status == "ok"
        )

    @property
    def restarted_docker(self) -> bool:
        return Service.DOCKER in self.restarted

    @property
    def rolled_back(self) -> bool:
        return any(s.kind == StepKind.RESTORE for s in self.steps)

    @property
    def failure(self) -> str:
        failed = [s for s in self.steps if s.status == "fail"]
        return (
            "; ".join(f"{s.subject}: {s.message}" for s in failed)
            or f"the apply script exited with status {self.exit_status}"
        )


def parse_apply_output(exit_status: int, output: str) -> ApplyResult:
    """The steps in the apply script's output (`step KIND SUBJECT STATUS MESSAGE` records)."""
    records = decode_records(output, 4, first="step", unreadable=b"(unreadable message)")
    steps = [Step(r.fields[1], r.fields[2], r.fields[3], r.text.strip()) for r in records]
    return ApplyResult(exit_status, tuple(steps))


def apply_plan(
    node: Node,
    plan: Plan,
    *,
    init_system: str,
    stamp: str,
    restart_timeout: int,
    keep_backups: int,
    facts_script: str | None = None,
) -> ApplyResult:
    """Apply `plan` on the node; with `facts_script`, the result carries the node's facts read
    afterwards."""
    script = render_apply_script(
        plan,
        init_system=init_system,
        stamp=stamp,
        restart_timeout=restart_timeout,
        keep_backups=keep_backups,
        facts_script=facts_script,
    )
    timeout = 2 * LOCK_WAIT_SECONDS + 2 * restart_timeout + 60
    result = node.run_as_root(script, timeout=timeout, payload=secrets_payload(plan))
    # The steps come first; file contents in the facts after the marker are never read as steps.
    marker_line = b"\n" + VERIFY_MARKER.encode() + b"\n"
    steps, marker, facts_output = result.output.partition(marker_line)
    applied = parse_apply_output(result.exit_status, steps.decode("utf-8", errors="replace"))
    if not any(s.kind == StepKind.DONE for s in applied.steps) and applied.ok:
        raise ApplyError(
            f"{node.label}: the apply script stopped early (exit {result.exit_status}): "
            f"{result.stderr.strip()[-300:]}"
        )
    if marker and applied.ok:
        try:
            return dataclasses.replace(applied, after=parse_facts(facts_output))
        except FactsParseError:
            pass  # the runner reads the node again with a command of its own
    return applied
