"""Whether to draw progress bars: on a terminal yes, in CI or with STOCKCLF_QUIET no.

Bars are for people watching a terminal; in a log file (CI, `dvc repro > log`) tqdm's
carriage returns only add noise. ``STOCKCLF_QUIET=1`` turns them off even on a terminal,
for CI systems that allocate a pseudo-terminal. The stage scripts run under DVC, which
passes the environment through, so the variable works for `dvc repro` and `dvc exp run`.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

QUIET_ENV = "STOCKCLF_QUIET"
_FALSE = ("", "0", "false", "no", "off")


def quiet() -> bool:
    """True when ``STOCKCLF_QUIET`` is set to anything but an empty/false value."""
    return os.environ.get(QUIET_ENV, "").strip().lower() not in _FALSE


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Progress bars only when ``stream`` (default stderr) is a terminal and not quiet."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet() and bool(isatty and isatty())
