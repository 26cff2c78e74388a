"""``train.loggers: [dvclive, tensorboard]``: every run also writes TensorBoard event files,
with the scalars dvclive records, and ``tensorboard --logdir tuning/trials`` finds each
trial."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from stockclf.config import ParamsError
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.training.run import TENSORBOARD_DIR

#: What every run logs, by the names both loggers give them.
EXPECTED = {
    "train/loss",
    "train/f1",
    "train/acc",
    "val/loss",
    "val/f1",
    "val/acc",
    "lr-AdamW/backbone",
    "lr-AdamW/head",
}

BOTH = {"train": {"loggers": ["dvclive", "tensorboard"]}}


def dvclive_scalars(live: Path) -> dict[str, list[tuple[int, float]]]:
    """Every metric of a dvclive directory: its name (the TSV path below plots/metrics,
    without .tsv) and its (step, value) rows."""
    root = live / "plots" / "metrics"
    out = {}
    for tsv in root.rglob("*.tsv"):
        with tsv.open(newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))[1:]
        name = tsv.relative_to(root).with_suffix("").as_posix()
        out[name] = [(int(step), float(value)) for step, value in rows]
    return out


def tensorboard_scalars(events: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a folder of TensorBoard event files, read as TensorBoard reads it."""
    acc = EventAccumulator(str(events))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_same_scalars(live: Path) -> None:
    """The event files below ``live`` hold dvclive's scalars: the same names, steps and
    values (float32 in the event files)."""
    dvclive = dvclive_scalars(live)
    board = tensorboard_scalars(live / TENSORBOARD_DIR)
    assert set(board) >= EXPECTED, sorted(board)
    assert set(board) == set(dvclive)
    for name, points in board.items():
        # dvclive 3.49 records a value logged at step 0 at step 1 (it reads step 0 as "none
        # given"): the first epoch's learning rates
        steps = [max(step, 1) if name.startswith("lr-") else step for step, _ in points]
        assert steps == [step for step, _ in dvclive[name]], name
        values = [value for _, value in points]
        assert values == pytest.approx([v for _, v in dvclive[name]], rel=1e-6), name


def test_both_loggers_record_the_same_scalars(
    one_torch_thread, fit_tiny, make_params, tmp_path: Path
) -> None:
    params = make_params(BOTH)
    _, trainer, _ = fit_tiny(params, max_epochs=2)
    assert_same_scalars(tmp_path / "live")
    board = tensorboard_scalars(tmp_path / "live" / TENSORBOARD_DIR)
    assert len(board["val/f1"]) == trainer.current_epoch == 2  # one point per epoch
    # the learning rates follow the schedule: warmup, so the second epoch starts higher
    head = [value for _, value in board["lr-AdamW/head"]]
    assert len(head) == 2 and head[1] > head[0] > 0
    assert "hp_metric" not in board  # no made-up scalar beside the measured ones
    # a second run in the same place replaces the first one's event files, as dvclive does
    fit_tiny(params, max_epochs=2)
    assert len(list((tmp_path / "live" / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 1
    assert_same_scalars(tmp_path / "live")


def test_dvclive_alone_by_default_also_logs_the_learning_rates(
    one_torch_thread, fit_tiny, make_params, tmp_path: Path
) -> None:
    params = make_params()
    assert params.train.loggers == ["dvclive"]
    fit_tiny(params, max_epochs=1)
    assert not (tmp_path / "live" / TENSORBOARD_DIR).exists()
    assert set(dvclive_scalars(tmp_path / "live")) >= EXPECTED


def test_every_trial_is_a_tensorboard_run(
    one_torch_thread, make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    """What ``tensorboard --logdir tuning/trials`` shows: one run per trial, each holding
    what that trial's dvclive files hold."""
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    params = make_params(
        {**BOTH, "model": {"backbone": "test_efficientnet"}, "tune": {"pruner": "none"}}
    )
    summary = run_tune(params, out)
    assert summary["n_complete"] == 2
    board = EventMultiplexer().AddRunsFromDirectory(str(out.trials))
    board.Reload()
    runs = {"trial_0000/tensorboard", "trial_0001/tensorboard"}
    assert set(board.Runs()) == runs
    for run in runs:
        assert set(board.Runs()[run]["scalars"]) >= EXPECTED, run
        assert_same_scalars(out.trials / run.split("/")[0])


@pytest.mark.parametrize(
    ("loggers", "message"),
    [
        (["tensorboard"], "train.loggers: dvclive is required"),
        ([], "train.loggers: dvclive is required"),
        (["dvclive", "dvclive"], "train.loggers: loggers repeated"),
        (["dvclive", "wandb"], "train.loggers.1: Input should be 'dvclive' or 'tensorboard'"),
    ],
)
def test_loggers_without_dvclive_or_unknown_are_refused(make_params, loggers, message) -> None:
    with pytest.raises(ParamsError, match=message):
        make_params({"train": {"loggers": loggers}})
