"""Optuna's plots, drawn with its matplotlib backend (no browser) and saved as PNG."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import optuna
from optuna.visualization import matplotlib as ovm

PLOT_TITLES = {
    "optimization_history": "Optimization history",
    "param_importances": "Hyperparameter importances",
    "parallel_coordinate": "Parallel coordinates",
    "slice": "Slice plot",
    "contour": "Contour of the two most important parameters",
}


def top_params(study: optuna.Study, k: int = 2) -> list[str] | None:
    """The ``k`` most important params, or None when importances cannot be computed yet."""
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return None
    names = list(importances)[:k]
    return names if len(names) == k else None


def _draw(name: str, study: optuna.Study) -> object:
    makers: dict[str, Callable[[], object]] = {
        "optimization_history": lambda: ovm.plot_optimization_history(study),
        "param_importances": lambda: ovm.plot_param_importances(study),
        "parallel_coordinate": lambda: ovm.plot_parallel_coordinate(study),
        "slice": lambda: ovm.plot_slice(study),
        "contour": lambda: ovm.plot_contour(study, params=top_params(study)),
    }
    return makers[name]()


def _figure_of(axes: object) -> plt.Figure:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def _placeholder(name: str, reason: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.set_title(PLOT_TITLES[name])
    ax.text(
        0.5,
        0.5,
        f"Too little data for this plot yet.\n{reason}",
        ha="center",
        va="center",
        wrap=True,
        fontsize=12,
    )
    ax.set_axis_off()
    return fig


def _complete_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def save_plots(study: optuna.Study, names: Sequence[str], out_dir: Path, dpi: int) -> list[Path]:
    """Write one PNG per plot name into the existing directory ``out_dir``.

    A plot that needs more trials than the study has (importances and contour need two
    complete trials with varying params) becomes a figure that says so, not a crash.
    """
    written = []
    for name in names:
        fig = None
        if _complete_count(study) < 2 and name in ("param_importances", "contour"):
            fig = _placeholder(name, f"{_complete_count(study)} complete trial(s); need 2.")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fig = _figure_of(_draw(name, study))
                fig.suptitle(PLOT_TITLES[name])
            except (RuntimeError, ValueError, IndexError) as err:
                fig = _placeholder(name, str(err))
        fig.set_size_inches(10, 6)
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png", dpi=dpi)
        plt.close(fig)
        written.append(out_dir / f"{name}.png")
    return written
