"""The `stockclf` command. Thin: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stockclf.errors import run_main


def _study_show(args: argparse.Namespace) -> None:
    from stockclf.config import load_params
    from stockclf.reporting.study_report import format_summary, study_summary, to_json
    from stockclf.tuning.study import load_existing_study

    storage = args.storage or load_params(args.params).tune.storage
    name = args.study
    info = Path(args.study_info)
    if name is None and args.storage is None and info.exists():
        name = json.loads(info.read_text(encoding="utf-8"))["study_name"]
    summary = study_summary(load_existing_study(storage, name), top=args.top)
    print(to_json(summary) if args.json else format_summary(summary))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockclf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    study = sub.add_parser("study", help="inspect the Optuna study").add_subparsers(
        dest="action", required=True
    )
    show = study.add_parser("show", help="best trial, trial counts, top trials, importances")
    show.add_argument("--storage", help="study storage URL (default: tune.storage in params)")
    show.add_argument("--study", help="study name (default: the one the tune stage last used)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--top", type=int, default=5, help="how many top trials to list")
    show.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    show.add_argument("--study-info", default="tuning/study.json", help="tune stage's study record")
    show.set_defaults(func=_study_show)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_main(lambda: args.func(args))


if __name__ == "__main__":
    main()
