"""Suite-wide rules: the test bed fixtures, and a skipped test counts as a failure."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.testbed.fixtures", "tests.kubefake.fixtures"]


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_line(
            f"FAILED: {len(skipped)} test(s) skipped; every test must run here (see README)",
            red=True,
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = 1
