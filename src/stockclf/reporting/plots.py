"""Optuna's plots, drawn with its matplotlib backend (no browser) and saved as PNG.

Optuna draws the content; this module makes the files readable on their own: one title
per figure that names the plot, the metric and the trial counts, the metric name instead of
"Objective Value" on the axes, a seeded importance evaluator (the same as
``stockclf study show``, so the contour's "two most important params" are the ones the
report lists), and a width that grows with the number of params for the slice plot, whose
panels Optuna lays out in one row. A plot the study has too little data for becomes a
figure that says so, never a crash of the stage.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import optuna
from matplotlib.ticker import NullFormatter
from optuna.visualization import matplotlib as ovm

from stockclf.registry import PLOTS
from stockclf.reporting.study_report import importance_evaluator


@dataclass(frozen=True)
class PlotKind:
    """One plot ``visualize.plots`` may name: its title and how Optuna draws it."""

    title: str
    draw: Callable[[optuna.Study, str], object]  # (study, metric name) -> axes


# The plots registered in stockclf.registry.PLOTS (visualize.plots names them).
OPTIMIZATION_HISTORY = PlotKind(
    "Optimization history",
    lambda study, target: ovm.plot_optimization_history(study, target_name=target),
)
PARAM_IMPORTANCES = PlotKind(
    "Hyperparameter importances",
    lambda study, target: ovm.plot_param_importances(
        study, evaluator=importance_evaluator(), target_name=target
    ),
)
PARALLEL_COORDINATE = PlotKind(
    "Parallel coordinates",
    lambda study, target: ovm.plot_parallel_coordinate(study, target_name=target),
)
SLICE = PlotKind("Slice plot", lambda study, target: ovm.plot_slice(study, target_name=target))
# Where pruning cut: each trial's per-epoch validation value, pruned trials ending early.
INTERMEDIATE_VALUES = PlotKind(
    "Per-epoch value of every trial (pruned trials stop early)",
    lambda study, target: ovm.plot_intermediate_values(study),
)
# How busy the workers were: one bar per trial from its start to its end, by state.
TIMELINE = PlotKind("Timeline of the trials", lambda study, target: ovm.plot_timeline(study))
CONTOUR = PlotKind(
    "Contour of the two most important parameters",
    lambda study, target: ovm.plot_contour(study, params=top_params(study), target_name=target),
)
#: Titles Optuna puts on its own axes; replaced by one figure title.
OPTUNA_TITLES = {
    "Optimization History Plot",
    "Hyperparameter Importances",
    "Parallel Coordinate Plot",
    "Slice Plot",
    "Contour Plot",
    "Intermediate Values Plot",
    "Timeline Plot",
}
FIGSIZE = (10.0, 6.0)  # inches, every plot but the slice plot
SLICE_PANEL_WIDTH = 3.2  # inches per param in the slice plot (Optuna's own choice)
#: What a plot needs that a young study may not have; the message goes on the placeholder.
PLOT_ERRORS = (RuntimeError, ValueError, IndexError, KeyError, ZeroDivisionError)


def figure_size(name: str, study: optuna.Study) -> tuple[float, float]:
    """The size a plot is saved at: wider slice plots for more params, else ``FIGSIZE``."""
    if name != "slice":
        return FIGSIZE
    names = {p for t in _complete(study) for p in t.params}
    return (max(FIGSIZE[0], SLICE_PANEL_WIDTH * len(names) + 1.5), FIGSIZE[1])


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def top_params(study: optuna.Study, k: int = 2) -> list[str] | None:
    """The ``k`` most important params, or None when importances cannot be computed yet:
    before two complete trials, as ``stockclf study show`` says (fANOVA would otherwise rank
    one trial's params, giving each an equal share)."""
    if len(_complete(study)) < 2:
        return None
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=importance_evaluator()
        )
    except PLOT_ERRORS:
        return None
    names = list(importances)[:k]
    return names if len(names) == k else None


def _metric(study: optuna.Study) -> str:
    return str(study.user_attrs.get("metric") or "objective value")


def _title(name: str, study: optuna.Study) -> str:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = (
        f"{states.count(optuna.trial.TrialState.COMPLETE)} complete, "
        f"{states.count(optuna.trial.TrialState.PRUNED)} pruned, "
        f"{states.count(optuna.trial.TrialState.FAIL)} failed trials"
    )
    extra = {
        "param_importances": f"; importance for {_metric(study)} by fANOVA (seed 0)",
        "contour": f"; {_metric(study)} over the two most important parameters",
    }
    base = PLOTS.get(name).title if name != "contour" else "Contour plot"
    return f"{base}: {study.study_name}\n{counts}{extra.get(name, '')}"


def _draw(name: str, study: optuna.Study) -> object:
    return PLOTS.get(name).draw(study, _metric(study))


def _figure_of(axes: object) -> plt.Figure:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def _tidy(fig: plt.Figure) -> None:
    """Drop Optuna's per-axes titles (the figure title replaces them) and the minor tick
    labels of log axes, which overlap in narrow panels."""
    for ax in fig.axes:
        for loc in ("center", "left", "right"):
            if ax.get_title(loc=loc) in OPTUNA_TITLES:
                ax.set_title("", loc=loc)
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())


def placeholder(name: str, reason: str, title: str | None = None) -> plt.Figure:
    """A figure that says why the plot is missing (a young or failed study)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title(title or PLOTS.get(name).title)
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


def _plot(name: str, study: optuna.Study) -> plt.Figure:
    n_complete = len(_complete(study))
    title = _title(name, study)
    if n_complete < 2 and name in ("param_importances", "contour"):
        return placeholder(name, f"{n_complete} complete trial(s); need 2.", title)
    if n_complete < 1:
        return placeholder(name, "No complete trial.", title)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's "experimental" notices
            fig = _figure_of(_draw(name, study))
    except PLOT_ERRORS as err:
        plt.close("all")
        return placeholder(name, str(err), title)
    _tidy(fig)
    fig.suptitle(title)
    return fig


def save_plots(study: optuna.Study, names: Sequence[str], out_dir: Path, dpi: int) -> list[Path]:
    """Write one PNG per plot name into the existing directory ``out_dir``.

    A plot that needs more trials than the study has (importances and contour need two
    complete trials with varying params, the others one) becomes a figure that says so.
    Optuna switches matplotlib to its ggplot style globally; ``rc_context`` confines that.
    """
    written = []
    for name in names:
        with matplotlib.rc_context():
            fig = _plot(name, study)
            fig.set_size_inches(*figure_size(name, study))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # colorbar axes and tight_layout
                if name == "slice":
                    # Optuna places the colorbar next to all panels at once; tight_layout
                    # would then move a panel under it, constrained layout does not.
                    fig.set_layout_engine("constrained")
                else:
                    fig.tight_layout()
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=dpi)
            plt.close(fig)
        written.append(path)
    return written
