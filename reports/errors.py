"""The one exception a user's bad input turns into."""
from __future__ import annotations

from pathlib import Path


class ReportInputError(Exception):
    """Input the reports cannot use: names the file (or option) and the problem.

    The command line prints ``str(error)`` as a single line and exits with
    status 2, so the message must make sense on its own.
    """

    def __init__(self, where: str | Path, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
