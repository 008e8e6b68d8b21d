"""The per-node progress display: live table in a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import time

from rich.console import Console

from trains_nodeprep.report import Progress


def test_plain_progress_is_one_line_per_state_and_skips_waiting():
    stream = io.StringIO()
    with Progress(stream) as progress:
        progress("n1", "waiting")
        progress("n1", "reading facts")
        progress("n2", "waiting")
        progress("n1", "ready")
    assert stream.getvalue() == "n1: reading facts\nn1: ready\n"


def test_live_progress_shows_every_node_with_its_latest_state_then_clears():
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with Progress(io.StringIO(), live_console=console) as progress:
        for name in ("n1", "n2"):
            progress(name, "waiting")
        progress("n1", "reading facts")
        time.sleep(0.3)  # the live display refreshes 8 times a second
        progress("n1", "ready")
    screen = console.file.getvalue()
    assert "reading facts" in screen and "n2" in screen and "ready" in screen
    assert screen.rstrip().endswith("\x1b[2K")  # transient: the table is erased at the end
