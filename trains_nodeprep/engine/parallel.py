"""Run one action on many nodes at once; each node's outcome in the nodes' order."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .converge import NodeOutcome

if TYPE_CHECKING:
    from ..node import Node


def for_each_node(
    nodes: Sequence[Node],
    action: Callable[[Node], NodeOutcome],
    parallel: int,
    progress: Callable[[str, str], None] | None = None,
) -> list[NodeOutcome]:
    """Run `action(node)` on every node, at most `parallel` at once; outcomes in the nodes' order.

    `progress(label, state)` hears each node's steps and its final status.
    """

    def one(node: Node) -> NodeOutcome:
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


def _in_threads(
    one: Callable[[Node], NodeOutcome], nodes: Sequence[Node], workers: int
) -> list[NodeOutcome]:
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
