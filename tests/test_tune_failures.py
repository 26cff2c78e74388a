"""The failure policy: each fault is injected, recorded on its trial, and the study goes on."""

import math
import os
import signal
import weakref
from pathlib import Path

import pytest
import torch
import tune_fakes
from tune_fakes import COMPLETE, FAIL, WAITING

import stockclf.tuning.objective as objective_module
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.training.module import StockClassifier
from stockclf.tuning.signals import TuneInterrupted


def test_nan_loss_in_real_training_fails_the_trial_with_its_reason(
    one_torch_thread, make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    """The real path: the module raises NonFiniteLossError inside Lightning's fit."""
    original = StockClassifier._step
    poisoned = {"on": True}

    def step(self, batch, split):
        loss = original(self, batch, split)
        return loss * math.nan if split == "train" and poisoned["on"] else loss

    monkeypatch.setattr(StockClassifier, "_step", step)

    def stop_poisoning(study, trial) -> None:
        poisoned["on"] = False

    params = make_params(
        {
            "model": {"backbone": "test_efficientnet"},
            "tune": {"n_trials": 1, "pruner": "none"},
        }
    )
    summary = run_tune(
        params, TunePaths.under(tmp_path / "tuning", tiny_prepared), callbacks=[stop_poisoning]
    )
    first, second = tune_fakes.load_only_study(params).trials
    assert first.state == FAIL and second.state == COMPLETE
    assert first.user_attrs["failure"] == "nonfinite"
    assert first.user_attrs["fail_reason"].startswith("NonFiniteLossError: training loss is nan")
    assert "training_step" in first.user_attrs["traceback"]
    assert summary["n_fail"] == 1 and summary["n_complete"] == 1


def test_non_finite_metric_fails_the_trial(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    values = iter([math.inf, 0.4])
    monkeypatch.setattr(
        objective_module, "train_model", tune_fakes.fake_train_model(lambda p: next(values))
    )
    params = tune_fakes.on_journal(
        make_params({"tune": {"n_trials": 1, "pruner": "none"}}),
        tmp_path / "tuning" / "study.journal",
    )
    run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared))
    first, second = tune_fakes.load_only_study(params).trials
    assert first.state == FAIL and first.user_attrs["fail_reason"] == "val_f1 is inf"
    assert first.user_attrs["failure"] == "nonfinite" and second.state == COMPLETE


class Activations:
    """Stands for the tensors of a run: big, and referenced only by its frames."""

    def __init__(self) -> None:
        self.data = bytearray(64 << 20)


def test_out_of_memory_is_freed_before_the_next_trial(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    seen: dict[str, object] = {}
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    def value_of(params) -> float:
        calls = seen.setdefault("calls", [])
        calls.append(len(emptied))
        if len(calls) == 1:
            activations = Activations()
            seen["ref"] = weakref.ref(activations)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if len(calls) == 2:
            seen["freed_before_second"] = seen["ref"]() is None
            raise MemoryError("cannot allocate 64 MiB")
        return 0.5

    monkeypatch.setattr(objective_module, "train_model", tune_fakes.fake_train_model(value_of))
    params = tune_fakes.on_journal(
        make_params({"tune": {"n_trials": 2, "pruner": "none"}}),
        tmp_path / "tuning" / "study.journal",
    )
    summary = run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared))
    trials = tune_fakes.load_only_study(params).trials
    assert [t.state for t in trials] == [FAIL, FAIL, COMPLETE, COMPLETE]
    assert trials[0].user_attrs["failure"] == trials[1].user_attrs["failure"] == "oom"
    assert trials[0].user_attrs["fail_reason"] == (
        "out of memory: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert (
        trials[1].user_attrs["fail_reason"] == "out of memory: MemoryError: cannot allocate 64 MiB"
    )
    # the failed run's objects were gone, and the CUDA cache emptied, before the next trial
    assert seen["freed_before_second"] is True
    assert seen["calls"][1] > seen["calls"][0]
    assert summary["n_fail"] == 2 and summary["n_complete"] == 2


def test_any_other_exception_keeps_its_traceback(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    def broken_loader(params) -> float:
        if broken_loader.calls == 0:
            broken_loader.calls += 1
            raise KeyError("val_f1")
        return 0.25

    broken_loader.calls = 0
    monkeypatch.setattr(objective_module, "train_model", tune_fakes.fake_train_model(broken_loader))
    params = tune_fakes.on_journal(
        make_params({"tune": {"n_trials": 1, "pruner": "none"}}),
        tmp_path / "tuning" / "study.journal",
    )
    run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared))
    failed, done = tune_fakes.load_only_study(params).trials
    assert failed.state == FAIL and done.state == COMPLETE
    assert failed.user_attrs["failure"] == "error"
    assert failed.user_attrs["fail_reason"] == "KeyError: 'val_f1'"
    assert "in broken_loader" in failed.user_attrs["traceback"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_a_trial_fails_it_and_the_rerun_retries_it(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch, signum
) -> None:
    calls = []

    def value_of(params) -> float:
        calls.append(params.train.lr_head)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
            raise AssertionError("the signal should have interrupted the trial")
        return params.train.lr_head

    monkeypatch.setattr(objective_module, "train_model", tune_fakes.fake_train_model(value_of))
    before = signal.getsignal(signum)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    params = tune_fakes.on_journal(
        make_params({"tune": {"n_trials": 3, "pruner": "none", "sampler": "random"}}),
        tmp_path / "tuning" / "study.journal",
    )
    with pytest.raises(TuneInterrupted) as err:
        run_tune(params, out)
    assert err.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is before  # handlers restored

    trials = tune_fakes.load_only_study(params).trials
    assert [t.state for t in trials] == [COMPLETE, FAIL, WAITING]
    name = signal.Signals(signum).name
    assert trials[1].user_attrs["failure"] == "interrupted"
    assert trials[1].user_attrs["fail_reason"] == f"interrupted by {name} during the trial"
    assert trials[2].params == trials[1].params  # queued again, same point

    summary = run_tune(params, out)
    trials = tune_fakes.load_only_study(params).trials
    assert [t.state for t in trials] == [COMPLETE, FAIL, COMPLETE, COMPLETE]
    assert trials[2].system_attrs["failed_trial"] == 1 and calls[2] == calls[1]
    assert "fail_reason" not in trials[2].user_attrs  # the retry does not inherit it
    assert summary["n_complete"] == 3
