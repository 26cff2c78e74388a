"""DVC stage ``prepare``: validate the prices (or .npz) and write windows, labels and splits.

Thin on purpose: the work lives in :mod:`stockclf.data.prepare`. Bad params or bad
data end with ``error: <message>`` on stderr and exit status 2, without a traceback,
because the message (file, line or column, problem) is the whole story.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stockclf.config import load_params
from stockclf.data.prepare import prepare, write_summary
from stockclf.errors import run_main

#: Where the alias ``data.source: sample`` points, relative to the repository root (DVC's cwd).
SAMPLE_DIR = Path("data/sample")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--out", default="data/prepared", type=Path)
    parser.add_argument("--summary", default="reports/prepare.json", type=Path)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    summary = prepare(params.data, args.out, SAMPLE_DIR)
    write_summary(summary, args.summary)
    for name in ("train", "val", "test"):
        s = summary[name]
        balance = ", ".join(
            f"{key.removeprefix('frac_')} {value:.2f}"
            for key, value in s.items()
            if key.startswith("frac_")
        )
        print(f"{name}: {s['n']} samples, {s['first_date']} .. {s['last_date']}, {balance}")


if __name__ == "__main__":
    run_main(main)
