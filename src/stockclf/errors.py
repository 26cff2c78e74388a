"""Expected failures: one clear line and a non-zero exit, for stages and the CLI.

Errors caused by the user's input (params, data, a missing study) subclass
:class:`StockclfError`; they are printed without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2


class StockclfError(Exception):
    """Base class of errors the user can fix; the message names the file or key."""


class Interrupted(KeyboardInterrupt):
    """Work stopped by SIGINT or SIGTERM after recording what it was doing (tuning fails
    and requeues its running trial); the process exits with 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def run_main(main: Callable[[], object]) -> None:
    """Call ``main``; on a user error print ``error: ...`` to stderr and exit 2; when a
    signal stopped it, say so and exit with 128 + its number (130 for SIGINT, 143 for
    SIGTERM). Neither prints a traceback."""
    try:
        main()
    except (StockclfError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except Interrupted as err:
        print(
            f"error: {err}: the running trial is recorded as failed and queued again; "
            "rerun to continue",
            file=sys.stderr,
        )
        sys.exit(err.exit_code)


class StudyError(StockclfError, RuntimeError):
    """The Optuna study cannot be opened or used; the message says what to do."""


class DataError(StockclfError, ValueError):
    """Input data that cannot be used; the message names the file, row or column and problem."""
