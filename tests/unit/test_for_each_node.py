"""for_each_node: every node once, in the nodes' order, at most `parallel` at once, each closed."""

from __future__ import annotations

import threading
import time

import pytest

from trains_nodeprep.engine.converge import NodeOutcome
from trains_nodeprep.engine.parallel import for_each_node


class FakeNode:
    """Plain data standing in for a node: the function under test only calls close() on it."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_outcomes_come_in_the_nodes_order_with_at_most_parallel_at_once():
    nodes = [FakeNode(f"n{i}") for i in range(20)]
    running, peak, lock = 0, 0, threading.Lock()

    def action(node: FakeNode) -> NodeOutcome:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01 * (20 - int(node.label[1:])) / 20)  # later nodes finish first
        with lock:
            running -= 1
        outcome = NodeOutcome(node.label)
        outcome.status = "ready"
        return outcome

    heard: list[tuple[str, str]] = []
    outcomes = for_each_node(
        nodes, action, parallel=4, progress=lambda label, state: heard.append((label, state))
    )

    assert [o.label for o in outcomes] == [n.label for n in nodes]
    assert 1 < peak <= 4
    assert all(node.closed for node in nodes)
    assert sorted(label for label, state in heard if state == "ready") == sorted(
        n.label for n in nodes
    )


def test_a_bug_in_the_action_is_raised_not_swallowed():
    def action(node: FakeNode) -> NodeOutcome:
        if node.label == "n3":
            raise RuntimeError("bug")
        return NodeOutcome(node.label)

    nodes = [FakeNode(f"n{i}") for i in range(6)]
    with pytest.raises(RuntimeError, match="bug"):
        for_each_node(nodes, action, parallel=3)
    assert all(node.closed for node in nodes)
