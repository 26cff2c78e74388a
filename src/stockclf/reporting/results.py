"""The visualize stage's numbers: bootstrap intervals and the backtest, with the equity plot.

Everything is computed in memory first (:func:`compute_results`); the files are written
only afterwards (:func:`write_results`), so a failure leaves the previous outputs as they
were.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from stockclf.config import EvaluateParams, Params
from stockclf.evaluation.backtest import run_backtest
from stockclf.evaluation.bootstrap import evaluate_intervals
from stockclf.evaluation.predictions import PredictionTable, read_predictions
from stockclf.files import atomic_file

#: Baselines whose predictions are backtested like the model's.
BACKTESTED = ("minirocket",)
EQUITY_COLUMNS = ("date", "year", "strategy", "buy_and_hold", *BACKTESTED)

#: The books drawn and summarised: (key in the backtest report, label).
BOOKS = (
    ("strategy", "model"),
    *((name, name) for name in BACKTESTED),
    ("buy_and_hold", "buy and hold"),
)


def uncertainty_report(
    preds: PredictionTable, n_classes: int, evaluate: EvaluateParams, seed: int
) -> dict[str, Any]:
    """Block-bootstrap intervals of every predictor's test macro F1 (and the model's gain
    over each baseline), plus the settings that produced them."""
    intervals = evaluate_intervals(
        preds.dates, preds.y_true, preds.predicted, n_classes, evaluate, seed
    )
    return {
        "confidence": evaluate.confidence,
        "n_resamples": evaluate.bootstrap_samples,
        "block_days": evaluate.bootstrap_block_days,
        "n_dates": len(np.unique(preds.dates)),
        **intervals,
    }


def backtest_report(
    preds: PredictionTable,
    classes: list[str],
    n_symbols: int,
    horizon: int,
    stride: int,
    cost_bps: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The model's predictions backtested against buy-and-hold (see backtest.py), and each
    of :data:`BACKTESTED` traded the same way on the same book.

    A baseline's numbers go under its own key, with the keys of ``"strategy"``, and its
    equity in a column of its name: the model's keys stay where they always were.
    """

    def run(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return run_backtest(
            preds.dates,
            preds.symbols,
            n_symbols,
            preds.forward_return,
            preds.predicted[name],
            classes,
            horizon=horizon,
            stride=stride,
            cost_bps=cost_bps,
        )

    summary, rows = run("model")
    if "skipped" in summary:
        return summary, rows
    for name in BACKTESTED:
        other, other_rows = run(name)  # same dates, symbols and returns: the same grid
        summary[name] = other["strategy"]
        for row, other_row in zip(rows, other_rows, strict=True):
            row[name] = other_row["strategy"]
    return summary, rows


def not_applicable(meta: dict[str, Any]) -> str | None:
    """Why the backtest cannot run on this prepared data, or None when it can.

    An ``.npz`` source has no prices: ``meta.json`` has no horizon and the samples no
    forward return, so there is nothing to trade.
    """
    if meta.get("horizon") is None:
        return (
            "the input has no prices (an .npz data.source: no horizon in meta.json, no "
            "forward returns), so there is nothing to trade"
        )
    return None


@dataclass(frozen=True)
class Results:
    uncertainty: dict[str, Any]  # block-bootstrap intervals of test macro F1
    backtest: dict[str, Any]  # strategy and buy-and-hold performance
    equity: list[dict[str, Any]]  # equity-curve rows (EQUITY_COLUMNS)


def compute_results(predictions: Path, meta: dict[str, Any], params: Params) -> Results:
    """Read the test predictions and compute the intervals and the backtest.

    The intervals need only classes and dates, so they are computed for any input; where
    the backtest does not apply, its report says why and the equity curve has no rows.
    """
    classes = list(meta["classes"])
    preds = read_predictions(predictions, classes, meta["symbols"])
    uncertainty = uncertainty_report(preds, len(classes), params.evaluate, params.seed)
    reason = not_applicable(meta)
    if reason is not None:
        return Results(uncertainty, {"applicable": False, "reason": reason}, [])
    backtest, equity = backtest_report(
        preds,
        classes,
        n_symbols=len(meta["symbols"]),
        horizon=int(meta["horizon"]),
        stride=params.data.stride,
        cost_bps=params.evaluate.cost_bps,
    )
    return Results(uncertainty, backtest, equity)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_results(results: Results, bootstrap: Path, backtest: Path, equity: Path) -> None:
    """The interval and backtest files and the equity-curve TSV (a DVC plot). The two JSON
    files are details, plain stage outputs: ``dvc exp show`` compares the few headline
    numbers drawn from them (:func:`stockclf.pipeline.visualize.headline_metrics`)."""
    _write_json(bootstrap, results.uncertainty)
    _write_json(backtest, results.backtest)
    with atomic_file(equity) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(EQUITY_COLUMNS), delimiter="\t")
        writer.writeheader()
        writer.writerows(results.equity)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


def _summary_line(name: str, m: dict[str, Any]) -> str:
    sharpe = "n/a" if m["sharpe"] is None else f"{m['sharpe']:.2f}"
    hit = "n/a" if m["hit_rate"] is None else f"{100 * m['hit_rate']:.0f}%"
    return (
        f"{name}: total {_pct(m['total_return'])}, annual {_pct(m['annual_return'])}, "
        f"Sharpe {sharpe}, max drawdown {100 * m['max_drawdown']:.1f}%, hit rate {hit}"
    )


def _no_backtest(backtest: dict[str, Any]) -> str | None:
    """Why there is no backtest (not applicable to the input, or skipped), or None."""
    if backtest.get("applicable", True) is False:
        return f"not applicable: {backtest['reason']}"
    return None if "skipped" not in backtest else f"skipped: {backtest['skipped']}"


def plot_equity(backtest: dict[str, Any], rows: list[dict[str, Any]], out: Path, dpi: int) -> None:
    """Equity of the strategies and of buy-and-hold on the test split, with the key numbers
    and the cost assumption written on the figure."""
    fig, ax = plt.subplots(figsize=(10, 5.5))
    title = "Backtest on the test split"
    if "costs" in backtest:
        title += f" ({backtest['costs']})"
    why = _no_backtest(backtest)
    if why is not None or not rows:
        ax.set_title(title)
        ax.text(0.5, 0.5, f"No backtest\n{why}", ha="center", va="center", wrap=True)
        ax.set_axis_off()
    else:
        dates = np.array([r["date"] for r in rows], dtype="datetime64[D]")
        for key, name in BOOKS:
            label = name if key == "buy_and_hold" else f"{name}: long up / short down"
            ax.plot(dates, [r[key] for r in rows], label=label)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_title(
            f"{title}\nequal weight per symbol, rebalanced every "
            f"{backtest['rebalance_days']} trading days"
        )
        ax.set_xlabel("date")
        ax.set_ylabel("equity (start = 1)")
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        text = "\n".join(_summary_line(name, backtest[key]) for key, name in BOOKS)
        # Below the axes, where it cannot cover a curve.
        ax.text(0.5, -0.14, text, transform=ax.transAxes, ha="center", va="top", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def plot_f1_intervals(uncertainty: dict[str, Any], names: list[str], out: Path, dpi: int) -> None:
    """Test macro F1 of each predictor with its block-bootstrap interval: if the model's
    interval overlaps a baseline's, the test split cannot tell them apart."""
    fig, ax = plt.subplots(figsize=(9, 0.8 * len(names) + 1.8))
    level = round(100 * uncertainty["confidence"])
    for i, name in enumerate(names):
        entry = uncertainty[name]
        low, high, point = entry["f1_macro_ci_low"], entry["f1_macro_ci_high"], entry["f1_macro"]
        ax.plot([low, high], [i, i], color="C0", linewidth=3)
        ax.plot([point], [i], "o", color="C1")
        text = f"{point:.3f} [{low:.3f}, {high:.3f}]"
        if "model_gain" in entry:
            text += (
                f"\nmodel minus {name}: {entry['model_gain']:+.3f} "
                f"[{entry['model_gain_ci_low']:+.3f}, {entry['model_gain_ci_high']:+.3f}]"
            )
        ax.annotate(text, (high, i), xytext=(6, 0), textcoords="offset points", fontsize=8,
                    va="center")  # fmt: skip
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("test macro F1")
    ax.set_title(
        f"Test macro F1 with {level}% block-bootstrap intervals\n"
        f"({uncertainty['n_resamples']} resamples of blocks of "
        f"{uncertainty['block_days']} test dates)"
    )
    lo = min(uncertainty[n]["f1_macro_ci_low"] for n in names)
    hi = max(uncertainty[n]["f1_macro_ci_high"] for n in names)
    ax.set_xlim(max(0.0, lo - 0.05), hi + 0.3)  # room for the labels right of the bars
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def format_results(results: Results, names: list[str]) -> str:
    """A few lines for the stage log: the intervals and the backtest."""
    u = results.uncertainty
    lines = [f"test macro F1, {round(100 * u['confidence'])}% block-bootstrap interval:"]
    for name in names:
        e = u[name]
        line = f"  {name:<10} {e['f1_macro']:.4f} [{e['f1_macro_ci_low']:.4f}, "
        line += f"{e['f1_macro_ci_high']:.4f}]"
        if "model_gain" in e:
            line += f"  model gain [{e['model_gain_ci_low']:+.4f}, {e['model_gain_ci_high']:+.4f}]"
        lines.append(line)
    b = results.backtest
    why = _no_backtest(b)
    if why is not None:
        lines += ["backtest:" if "costs" not in b else f"backtest ({b['costs']}):", f"  {why}"]
    else:
        lines.append(f"backtest ({b['costs']}):")
        lines += [f"  {_summary_line(name, b[key])}" for key, name in BOOKS]
    return "\n".join(lines)
