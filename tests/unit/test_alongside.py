"""_alongside: check's cluster reads run while the nodes are read, and their failure is not lost."""

from __future__ import annotations

import threading

import pytest

from trains_nodeprep.errors import NodePrepError
from trains_nodeprep.workflows import _alongside


def test_the_work_runs_while_the_block_runs_and_is_done_after_it():
    started, block_done, finished = threading.Event(), threading.Event(), []

    def work() -> None:
        started.set()
        assert block_done.wait(10), "the block never finished"
        finished.append(True)

    with _alongside(work):
        assert started.wait(10), "the work did not start while the block ran"
        block_done.set()
    assert finished == [True]


def test_a_failure_of_the_work_is_raised_after_the_block():
    ran = []

    def work() -> None:
        raise NodePrepError("kubectl version did not finish within 30 s; check the cluster")

    with pytest.raises(NodePrepError, match="kubectl version did not finish"):
        with _alongside(work):
            ran.append("block")
    assert ran == ["block"]


def test_a_failure_of_the_block_wins_and_still_waits_for_the_work():
    finished = []

    with pytest.raises(KeyError):
        with _alongside(lambda: finished.append(True)):
            raise KeyError("node phase")
    assert finished == [True]


def test_no_work_is_a_plain_block():
    with _alongside(None):
        pass
