"""The pytest fixtures of the test bed: `bed` (one TestBed per session) and `make_node` (a
factory of nodes that are stopped when the test ends). tests/conftest.py loads them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .bed import TestBed
from .node import TestNode
from .tini import TiniNode


@pytest.fixture(scope="session")
def bed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestBed]:
    """The session's TestBed (shared even if this fixture is imported in several places)."""
    if os.geteuid() != 0:
        pytest.fail("the trains-nodeprep test bed needs root (run pytest as root)", pytrace=False)
    holder = request.config.__dict__.setdefault("_tnp_testbed", {"bed": None, "users": 0})
    if holder["bed"] is None:
        tb = TestBed(Path(tmp_path_factory.mktemp("testbed")))
        tb.start()
        holder["bed"] = tb
    holder["users"] += 1
    try:
        yield holder["bed"]
    finally:
        holder["users"] -= 1
        if holder["users"] == 0:
            tb, holder["bed"] = holder["bed"], None
            tb.stop()


@pytest.fixture
def make_node(bed: TestBed) -> Iterator[Callable[..., Any]]:
    """Factory: make_node(name=None, kind=TiniNode, **options) -> a started node of that
    kind (options as TestBed.add_node), with a unique name; stopped at teardown."""
    created: list[TestNode] = []

    def factory(name: str | None = None, kind: type[TestNode] = TiniNode, **options: Any) -> Any:
        while name is None or name in bed.nodes:
            counter = bed.__dict__.setdefault("_name_counter", 0) + 1
            bed.__dict__["_name_counter"] = counter
            name = f"node{counter}"
        node = bed.add_node(name, kind, **options)
        created.append(node)
        return node

    yield factory
    for node in reversed(created):
        if node.init_pid:
            node.stop()
