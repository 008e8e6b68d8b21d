"""The text report's requirement lines: columns that wrap inside themselves, at any width."""

from __future__ import annotations

import io

from rich.console import Console

from trains_nodeprep.cluster.deploy import ClusterOutcome
from trains_nodeprep.engine.types import Requirement
from trains_nodeprep.report import print_cluster

LONG = Requirement(
    id="server.directory:/opt/trains/data/elastic_7",
    expected="directory owned 1000:1000 mode 755",
    actual="directory owned 0:0 mode 700, and a long story about why that is not right",
    ok=False,
    where="/opt/trains/data/elastic_7",
)
SHORT = Requirement("sysctl.vm.max_map_count", ">= 262144", "262144", True)


def rendered(requirements: list[Requirement], width: int) -> list[str]:
    out = io.StringIO()
    cluster = ClusterOutcome(context="test", kustomize_dir="/k", requirements=requirements)
    print_cluster(Console(file=out, width=width, color_system=None), cluster)
    return out.getvalue().splitlines()[1:]  # after the "cluster" status line


def cells(lines: list[str], starts: list[int]) -> list[str]:
    """Each column's text, its folded pieces put back together (spaces between words dropped)."""
    bounds = [*starts, max(len(line) for line in lines)]
    return [
        "".join(line[start:end].strip() for line in lines).replace(" ", "")
        for start, end in zip(bounds, bounds[1:])
    ]


def test_a_long_id_wraps_inside_its_column_on_80_columns():
    lines = rendered([LONG], 80)

    assert len(lines) > 1, "expected the row to wrap on 80 columns"
    assert all(len(line) <= 80 for line in lines), lines
    first = lines[0]
    starts = [
        first.index("drift"),
        first.index("server."),
        first.index("expected"),
        first.index("actual"),
        first.index("("),
    ]
    status, id_, expected, actual, where = cells(lines, starts)
    assert status == "drift"
    assert id_ == LONG.id
    assert expected == f"expected {LONG.expected}".replace(" ", "")
    assert actual == f"actual {LONG.actual}".replace(" ", "")
    assert where == f"({LONG.where})"


def test_every_line_fits_whatever_the_width():
    for width in (40, 60, 80, 100, 120):
        lines = rendered([LONG, SHORT], width)

        assert all(len(line) <= width for line in lines), (width, lines)


def test_on_a_wide_console_each_requirement_is_one_line_with_the_columns_aligned():
    lines = rendered([LONG, SHORT], 250)

    assert len(lines) == 2
    assert lines[0].startswith(f"  drift  {LONG.id}  expected {LONG.expected}")
    assert lines[1].startswith("  ok     sysctl.vm.max_map_count")
    assert lines[0].index("expected") == lines[1].index("expected")
    assert lines[0].index("actual") == lines[1].index("actual")


def test_ok_rows_keep_the_status_column_five_wide_without_any_drift():
    # integration tests look for "ok     <id>": the status column does not shrink to "ok"
    lines = rendered([SHORT], 80)

    assert lines == [lines[0]] and lines[0].startswith("  ok     sysctl.vm.max_map_count  expected")
