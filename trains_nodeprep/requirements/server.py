"""trains-server's own state on the node: its hostPath data directories (owner and mode where the
playbook gives them) and its config files under /opt/trains/config (apiserver.conf holds the
fixed users' passwords: secret, never shown)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..engine.builder import PlanBuilder
from ..engine.facts import NodeFacts
from ..engine.types import DirChange, Requirement
from ..errors import ConfigError
from ..model import APISERVER_CONF, DataMove, DesiredState
from .base import Concern, FactsNeeds, ManagedFile, require_readable

if TYPE_CHECKING:
    from ..engine.parse import Records


def facts(desired: DesiredState) -> FactsNeeds:
    # the directories go in the archive as entries (owner, mode; followed as a hostPath is)
    moves = _moves_to_guard(desired)
    return FactsNeeds(
        shell="server.facts.sh" if moves else None,
        calls=(
            *(("readfile", f.path) for f in desired.server_files),
            *(("archive_entry", d.path) for d in desired.directories),
            *((("data_dir", *(p for m in moves for p in (m.old, m.new))),) if moves else ()),
        ),
    )


def _moves_to_guard(desired: DesiredState) -> list[DataMove]:
    """The data moves this playbook makes: its directories hold the new place, not the old."""
    paths = {d.path for d in desired.directories}
    return [m for m in desired.deploy.data_moves if m.new in paths and m.old not in paths]


def parse(records: Records) -> dict[str, Any]:
    return {"data_dirs": {path: state for path, state, _ in records.of_kind("datadir")}}


def managed_files(desired: DesiredState) -> tuple[ManagedFile, ...]:
    files = {f.path: ManagedFile(f.path, secret=f.secret) for f in desired.server_files}
    files.setdefault(APISERVER_CONF, ManagedFile(APISERVER_CONF, secret=True))
    return tuple(files.values())


def plan(facts: NodeFacts, desired: DesiredState, builder: PlanBuilder) -> None:
    """trains-server's hostPath directories and config files."""
    for move in _moves_to_guard(desired):
        if facts.data_dirs.get(move.old) == "data" and facts.data_dirs.get(move.new) in (
            "absent",
            "empty",
        ):
            builder.blockers.append(
                f"{move.old} holds trains-server data, but this release keeps it in {move.new},"
                " which is empty: trains-server would start with an empty database. Migrate the"
                f" data to {move.new} as the release's upgrade notes say (Elasticsearch 5 data"
                " must be reindexed for Elasticsearch 7), or move the old directory away to"
                " start afresh"
            )
    for want in desired.directories:
        have = facts.directories.get(want.path)
        expected = (
            "directory"
            + (f" owned {want.owner}:{want.group}" if want.owner is not None else "")
            + (f" mode {want.mode:o}" if want.mode is not None else "")
        )
        if have is None or have.state == "absent":
            actual, ok = "missing", False
        elif have.state == "notdir":
            builder.blockers.append(
                f"{want.path}: exists but is not a directory; "
                "move it away so trains-server can keep its data there"
            )
            actual, ok = "not a directory", False
        else:
            wrong_owner = want.owner is not None and (have.owner, have.group) != (
                want.owner,
                want.group,
            )
            wrong_mode = want.mode is not None and have.mode != want.mode
            actual = f"directory owned {have.owner}:{have.group} mode {have.mode:o}"
            ok = not (wrong_owner or wrong_mode)
        builder.requirements.append(
            Requirement(f"server.directory:{want.path}", expected, actual, ok, want.path)
        )
        if not ok and (have is None or have.state != "notdir"):
            builder.dir_changes.append(
                DirChange(
                    want.path,
                    have is None or have.state == "absent",
                    want.owner,
                    want.group,
                    want.mode,
                )
            )
    for wanted in desired.server_files:
        found = facts.file(wanted.path)
        try:
            require_readable(found)
        except ConfigError as err:
            builder.blockers.append(str(err))
            continue
        same = found.content == wanted.content
        state = "as configured" if same else ("missing" if not found.exists else "differs")
        builder.requirements.append(
            Requirement(f"server.file:{wanted.path}", "as configured", state, same, wanted.path)
        )
        builder.change_file(found, wanted.content, mode=wanted.mode)


CONCERN = Concern(
    name="server",
    facts=facts,
    parse=parse,
    plan=plan,
    managed_files=managed_files,
)
