"""The command line: commands, options and exit codes. The work happens in workflows.py.

`trains_nodeprep.cli:main` is the console script.
"""

from .application import app, main, run_app

__all__ = ["app", "main", "run_app"]
