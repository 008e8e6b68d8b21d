"""One error family. Each message is one line: what failed, where, and what to do."""

from __future__ import annotations

EXIT_OK = 0
EXIT_DRIFT = 1  # check: a node is not ready; run: a node failed or was refused
EXIT_USAGE = 2  # bad options or a bad playbook
EXIT_CONNECTION = 3  # a node could not be reached, authenticated, or sudo was refused


class NodePrepError(Exception):
    """Base error: `str(err)` is the one line the user sees."""

    exit_code = EXIT_DRIFT


class UsageError(NodePrepError):
    exit_code = EXIT_USAGE


class PlaybookError(NodePrepError):
    exit_code = EXIT_USAGE


class ConnectionFailed(NodePrepError):
    """Unreachable host, refused authentication, unknown host key, sudo refused."""

    exit_code = EXIT_CONNECTION


class ConfigError(NodePrepError):
    """An existing config file on a node that the tool will not touch as it is."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}; {fix}")


class ApplyError(NodePrepError):
    """Applying a plan failed on a node."""
