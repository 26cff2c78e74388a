"""Expected failures: one clear line and a non-zero exit, for stages and the CLI.

Errors caused by the user's input (params, data, a missing study) subclass
:class:`StockclfError`; they are printed without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2


class StockclfError(Exception):
    """Base class of errors the user can fix; the message names the file or key."""


def run_main(main: Callable[[], object]) -> None:
    """Call ``main``; on a user error print ``error: ...`` to stderr and exit 2."""
    try:
        main()
    except (StockclfError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
