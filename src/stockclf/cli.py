"""The `stockclf` command. Thin: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stockclf.errors import run_main


def _study_show(args: argparse.Namespace) -> None:
    from stockclf.config import load_params
    from stockclf.reporting.study_report import format_summary, study_summary, to_json
    from stockclf.tuning.storage import load_study_for_reading

    storage, name = args.storage, args.study
    info = Path(args.study_info)
    if storage is None and info.exists():  # the study the tune stage last used
        recorded = json.loads(info.read_text(encoding="utf-8"))
        storage, name = recorded["storage"], name or recorded["study_name"]
    storage = storage or load_params(args.params).tune.storage
    summary = study_summary(load_study_for_reading(storage, name), top=args.top)
    print(to_json(summary) if args.json else format_summary(summary))


def _tune_worker(args: argparse.Namespace) -> None:
    from stockclf.config import load_params
    from stockclf.tuning.runner import join_study

    params = load_params(args.params)
    result = join_study(params, args.prepared, args.out / "trials", args.storage, args.jobs)
    print(
        f"study {result['study_name']}: {result['n_finished']} of {result['n_trials']} "
        f"trials finished ({result['stopped']}), {result['n_fail']} failed"
    )


def _predict(args: argparse.Namespace) -> None:
    from stockclf.inference.checkpoint import load_classifier
    from stockclf.inference.predict import as_json, as_text, predict, write_csv

    clf = load_classifier(args.model)
    result = predict(args.data, clf, args.date)
    if args.out is not None:
        write_csv(result, args.out)
        print(f"{len(result.table)} predictions written to {args.out}")
    else:
        print(as_json(result, clf) if args.json else as_text(result, clf))


def _export(args: argparse.Namespace) -> None:
    from stockclf.inference.export import export_model

    print(export_model(args.model, args.out, args.format).summary())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockclf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    study = sub.add_parser("study", help="inspect the Optuna study").add_subparsers(
        dest="action", required=True
    )
    show = study.add_parser("show", help="best trial, trial counts, top trials, importances")
    show.add_argument(
        "--storage",
        help="sqlite:///FILE, journal:///FILE or postgresql://USER@HOST/DB "
        "(default: the tune stage's study, else tune.storage in params)",
    )
    show.add_argument("--study", help="study name (default: the one the tune stage last used)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--top", type=int, default=5, help="how many top trials to list")
    show.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    show.add_argument("--study-info", default="tuning/study.json", help="tune stage's study record")
    show.set_defaults(func=_study_show)
    _add_worker(sub)
    _add_predict(sub)
    _add_export(sub)
    return parser


def _add_worker(sub: Any) -> None:
    tune = sub.add_parser("tune", help="tuning workers").add_subparsers(
        dest="action", required=True
    )
    worker = tune.add_parser(
        "worker",
        help="join the tune stage's study (same params and prepared data) from this machine",
    )
    worker.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    worker.add_argument(
        "--prepared", default=Path("data/prepared"), type=Path, help="default: %(default)s"
    )
    worker.add_argument(
        "--out", default=Path("tuning"), type=Path, help="trials' curves go to OUT/trials"
    )
    worker.add_argument("--storage", help="storage URL (default: tune.storage in params)")
    worker.add_argument("--jobs", type=int, help="worker processes (default: tune.n_jobs)")
    worker.set_defaults(func=_tune_worker)


def _add_predict(sub: Any) -> None:
    pred = sub.add_parser(
        "predict", help="class probabilities of the window ending on a date, per symbol"
    )
    pred.add_argument(
        "--data", required=True, type=Path, help="a directory of OHLCV CSVs, one .csv or an .npz"
    )
    pred.add_argument(
        "--date", default="latest", help="latest (each file's last row) or YYYY-MM-DD"
    )
    pred.add_argument("--model", default=Path("models/best.ckpt"), type=Path)
    shown = pred.add_mutually_exclusive_group()
    shown.add_argument("--out", type=Path, help="write a CSV instead of printing")
    shown.add_argument("--json", action="store_true", help="print one JSON object")
    pred.set_defaults(func=_predict)


def _add_export(sub: Any) -> None:
    export = sub.add_parser(
        "export", help="the model as one file that runs without stockclf or torch (docs/export.md)"
    )
    export.add_argument("--format", default="onnx", help="onnx, the one format (default)")
    export.add_argument("--model", default=Path("models/best.ckpt"), type=Path)
    # not under models/: that folder is train_best's DVC output, and a file added to it
    # makes `dvc repro` retrain the model (and delete the file)
    export.add_argument(
        "--out", default=Path("exports/model.onnx"), type=Path, help="default: %(default)s"
    )
    export.set_defaults(func=_export)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_main(lambda: args.func(args))


if __name__ == "__main__":
    main()
