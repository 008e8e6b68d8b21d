"""Pure: a plan that puts back the files of the newest backup set (what the last change replaced).

Backups are `FILE.<stamp>.bak` (a copy) or `FILE.<stamp>.absent.bak` (an empty marker: the
file did not exist, so restoring means removing it). The restore is itself a change with
its own backups, so restoring twice undoes the restore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import DesiredState
from ..requirements.base import ManagedFile
from ..requirements.registry import managed_files, services
from .builder import PlanBuilder
from .facts import NodeFacts
from .types import FileChange, Plan

_BACKUP_SUFFIX = re.compile(r"\.(?P<stamp>\d{8}T\d{6}(?:\.\d+)?Z)(?P<absent>\.absent)?\.bak$")


@dataclass(frozen=True)
class Backup:
    path: str  # the file it backs up
    name: str  # the backup file
    stamp: str
    absent: bool


def parse_backups(facts: NodeFacts) -> list[Backup]:
    found = []
    for path, names in facts.backups.items():
        for name in names:
            match = _BACKUP_SUFFIX.search(name)
            if match and name[: match.start()] == path:
                found.append(Backup(path, name, match["stamp"], bool(match["absent"])))
    return sorted(found, key=lambda b: (b.stamp, b.path))


def make_restore_plan(
    facts: NodeFacts, only_path: str | None = None, desired: DesiredState | None = None
) -> Plan:
    backups = parse_backups(facts)
    if only_path is not None:
        backups = [b for b in backups if b.path == only_path]
    if not backups:
        where = only_path or "any file trains-nodeprep manages"
        return Plan(requirements=(), blockers=(f"{where}: no backup to restore on this node",))
    newest = backups[-1].stamp
    chosen = {b.path: b for b in backups if b.stamp == newest}
    managed = managed_files(desired or DesiredState((), (), "", "restore"))
    changes = []
    for path, backup in sorted(chosen.items()):
        current = facts.file(path)
        if backup.absent:
            new = None
        else:
            saved = facts.file(backup.name)
            if saved.content is None:
                return Plan(
                    requirements=(),
                    blockers=(
                        f"{backup.name}: backup cannot be read ({saved.state}); restore it by hand",
                    ),
                )
            new = saved.content
        if current.content != new:
            rule = next((m for m in managed if m.matches(path)), ManagedFile(path))
            changes.append(FileChange(path, current, new, rule.restarts, rule.secret))
    # the planner's rule: a stopped service is left stopped, with a note
    stopped = frozenset(s for s, spec in services().items() if not spec.running(facts))
    builder = PlanBuilder(managed=managed, stopped=stopped)
    builder.file_changes = changes
    for service in dict.fromkeys(c.restarts for c in changes if c.restarts is not None):
        builder.restart(service, f"restoring the {service} config saved at {newest}")
    return builder.plan()
