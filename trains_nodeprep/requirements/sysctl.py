"""sysctl: each playbook key at least its minimum in the kernel now (`sysctl -w`) and at boot (the
playbook's sysctl file, and any later file under /etc that would lower it, raised in place).
Higher values are kept, and the value persisted is never below what the kernel has now.
"""

from __future__ import annotations

from typing import Any

from ..engine.builder import PlanBuilder
from ..engine.facts import NodeFacts
from ..engine.parse import Records, int_or_none
from ..engine.types import Requirement, SysctlWrite
from ..errors import ConfigError
from ..formats import sysctl_conf
from ..formats.sysctl_conf import SYSCTL_CONF, SYSCTL_DIRS
from ..model import DesiredState
from .base import Concern, FactsNeeds, ManagedFile, require_readable

SYSCTL_HEADER = (
    "# Managed by trains-nodeprep: minimums for trains-server (Elasticsearch). "
    "Higher values are kept."
)


def facts(desired: DesiredState) -> FactsNeeds:
    return FactsNeeds(
        shell="sysctl.facts.sh",
        values=tuple(setting.proc_path for setting in desired.sysctls),
        calls=(
            ("sysctl_dirs", *SYSCTL_DIRS),
            ("readfile_if_present", SYSCTL_CONF),
            ("readfile", desired.sysctl_file),
        ),
    )


def parse(records: Records) -> dict[str, Any]:
    runtime = {
        key: int_or_none(data.decode(errors="replace")) if state == "ok" else None
        for key, state, data in records.of_kind("sysctl")
    }
    found = [name for name, state, _d in records.of_kind("file") if state != "absent"]
    found += [name for name, _s, _d in records.of_kind("want")]
    return {
        "sysctl_runtime": runtime,
        "sysctl_files": tuple(
            dict.fromkeys(p for p in found if _is_sysctl_config(p) and p.endswith(".conf"))
        ),
    }


def _is_sysctl_config(path: str) -> bool:
    return path == SYSCTL_CONF or any(path.startswith(d + "/") for d in SYSCTL_DIRS)


def managed_files(desired: DesiredState) -> tuple[ManagedFile, ...]:
    return (
        ManagedFile(desired.sysctl_file),
        ManagedFile("/etc/sysctl.d/*.conf"),
        ManagedFile(SYSCTL_CONF),
    )


def plan(facts: NodeFacts, desired: DesiredState, builder: PlanBuilder) -> None:
    target = facts.file(desired.sysctl_file)
    try:
        require_readable(target)
    except ConfigError as err:
        builder.blockers.append(str(err))
        return
    file_texts = {path: facts.file(path).text or "" for path in facts.sysctl_files}
    current_boot = sysctl_conf.boot_values(file_texts)
    new_settings: dict[str, int] = {}
    for setting in desired.sysctls:
        runtime = facts.sysctl_runtime.get(setting.key)
        builder.requirements.append(
            Requirement(
                id=f"sysctl.{setting.key}",
                expected=f">= {setting.minimum}",
                actual="missing" if runtime is None else str(runtime),
                ok=runtime is not None and runtime >= setting.minimum,
                where=setting.proc_path,
            )
        )
        if runtime is None:
            builder.blockers.append(
                f"{setting.proc_path}: the kernel has no sysctl {setting.key}; "
                "remove it from the playbook"
            )
            continue
        if runtime < setting.minimum:
            builder.sysctl_writes.append(SysctlWrite(setting.key, runtime, setting.minimum))
        boot = current_boot.get(setting.key)
        boot_value = sysctl_conf.parse_int(boot.value) if boot else None
        builder.requirements.append(
            Requirement(
                id=f"sysctl.{setting.key}.persisted",
                expected=f">= {setting.minimum} at boot",
                actual=f"{boot.value}" if boot else "unset",
                ok=boot_value is not None and boot_value >= setting.minimum,
                where=boot.path if boot else desired.sysctl_file,
            )
        )
        if boot_value is None or boot_value < setting.minimum:
            # Persist the effective value: never write a number below what the kernel has now.
            new_settings[setting.key] = max(setting.minimum, runtime)
    if not new_settings:
        new_text = target.text
    else:
        new_text = sysctl_conf.render_sysctl_file(target.text, new_settings, SYSCTL_HEADER)
        builder.change_file(target, new_text.encode("utf-8"))
    _check_boot_precedence(facts, desired, file_texts, new_text or "", builder)


def _check_boot_precedence(
    facts: NodeFacts,
    desired: DesiredState,
    file_texts: dict[str, str],
    new_text: str,
    builder: PlanBuilder,
) -> None:
    """A file applied after ours that sets a lower value would silently win at every boot.

    Under /etc (the admin's files) its line is raised in place, visible in `plan`; a file
    shipped by a package or made at runtime is not edited: the node is refused with the fix.
    """
    planned = dict(file_texts)
    planned[desired.sysctl_file] = new_text
    raised: dict[str, dict[str, int]] = {}
    for setting in desired.sysctls:
        winner = sysctl_conf.boot_values(planned).get(setting.key)
        if winner is None or winner.path == desired.sysctl_file:
            continue
        value = sysctl_conf.parse_int(winner.value)
        if value is not None and value >= setting.minimum:
            continue
        if winner.path.startswith("/etc/") and facts.file(winner.path).state == "file":
            raised.setdefault(winner.path, {})[setting.key] = max(
                setting.minimum, facts.sysctl_runtime.get(setting.key) or 0
            )
            planned[winner.path] = sysctl_conf.render_sysctl_file(
                planned[winner.path], raised[winner.path], ""
            )
        else:
            builder.blockers.append(
                f"{winner.path}: sets {setting.key}={winner.value}, "
                f"applied at boot after {desired.sysctl_file}, so the lower value wins; "
                "override it with a file of the same name in /etc/sysctl.d "
                f"that sets at least {setting.minimum}"
            )
    for path in raised:
        builder.change_file(facts.file(path), planned[path].encode("utf-8"))


CONCERN = Concern(
    name="sysctl",
    facts=facts,
    parse=parse,
    plan=plan,
    managed_files=managed_files,
    apply_shell="sysctl.apply.sh",
)
