"""Pure: compare facts with the desired state; say what is off and what would fix it.

`make_plan(facts, desired)` reads nothing and writes nothing: every requirement module plans its
concern into one PlanBuilder. The plan is empty when the node is ready; `blockers` are problems
the tool refuses to fix by itself (the node is then left untouched).
"""

from __future__ import annotations

from ..model import DesiredState
from ..requirements.registry import CONCERNS, managed_files, services
from .builder import PlanBuilder
from .facts import NodeFacts
from .types import Plan


def make_plan(facts: NodeFacts, desired: DesiredState) -> Plan:
    stopped = frozenset(s for s, spec in services().items() if not spec.running(facts))
    builder = PlanBuilder(managed=managed_files(desired), stopped=stopped)
    for name in facts.unreadable_names:
        builder.blockers.append(
            f"{name!r}: a tab or newline in this file's name keeps trains-nodeprep from reading "
            "it, and what it sets (at boot, for sysctl files) decides whether the node is ready; "
            "rename it"
        )
    for concern in CONCERNS:
        concern.plan(facts, desired, builder)
    return builder.plan()
