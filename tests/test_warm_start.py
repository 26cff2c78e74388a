"""Carrying trials over: after a range is narrowed, exactly the earlier trials inside it
join the new study, each skipped one says why, and the sampler's next points are new."""

from __future__ import annotations

from pathlib import Path

import optuna
import tune_fakes
from tune_fakes import COMPLETE

from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning.storage import open_tuning_storage


def studies(params) -> list[optuna.Study]:
    storage = open_tuning_storage(params.tune.storage)
    names = optuna.get_all_study_names(storage)
    return [optuna.load_study(study_name=n, storage=storage) for n in names]


def test_narrowing_a_range_carries_exactly_the_trials_inside_it(
    make_params, tiny_prepared: Path, tmp_path: Path, capsys
) -> None:
    wide = {"lr_head": {"low": 0.0003, "high": 0.01, "log": True}}
    base = {"train": {"batch_size": 64}, "tune": {"pruner": "none", "n_startup_trials": 8}}
    first = make_params({**base, "tune": {**base["tune"], "n_trials": 8, "parameter_ranges": wide}})
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(first, out, train_fn=tune_fakes.quick)
    (old,) = studies(first)
    inside = [t for t in old.trials if 0.002 <= t.params["lr_head"] <= 0.01]
    assert 0 < len(inside) < 8  # the test means something only if some fall outside

    narrow = {"lr_head": {"low": 0.002, "high": 0.01, "log": True}}
    tune = {**base["tune"], "n_trials": len(inside) + 2, "parameter_ranges": narrow}
    second = make_params({**base, "tune": {**tune, "warm_start_from": "previous"}})
    capsys.readouterr()
    run_tune(second, out, train_fn=tune_fakes.quick)
    new = next(s for s in studies(second) if s.study_name != old.study_name)
    carried = [t for t in new.trials if "carried_from" in t.user_attrs]
    assert sorted(t.user_attrs["carried_from"] for t in carried) == sorted(
        f"{old.study_name}#{t.number}" for t in inside
    )
    assert [t.params for t in carried] == [t.params for t in inside]
    assert [t.value for t in carried] == [t.value for t in inside]
    fresh = [t for t in new.trials if "carried_from" not in t.user_attrs]
    assert len(fresh) == 2 and all(t.state == COMPLETE for t in fresh)
    assert all(0.002 <= t.params["lr_head"] <= 0.01 for t in fresh)
    assert not {t.params["lr_head"] for t in fresh} & {t.params["lr_head"] for t in inside}
    err = capsys.readouterr().err
    assert f"carried {len(inside)} trials from {old.study_name}" in err
    assert f"skipped {8 - len(inside)}" in err and "lies outside the new range" in err


def test_trials_measured_another_way_are_not_carried(
    make_params, tiny_prepared: Path, tmp_path: Path, capsys
) -> None:
    base = {"train": {"batch_size": 64}, "tune": {"pruner": "none", "n_trials": 2}}
    first = make_params(base)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(first, out, train_fn=tune_fakes.quick)
    # another untuned value (label smoothing) and another budget: nothing is comparable
    changed = make_params(
        {
            "train": {"batch_size": 64, "label_smoothing": 0.0},
            "tune": {**base["tune"], "warm_start_from": "previous"},
        }
    )
    capsys.readouterr()
    run_tune(changed, out, train_fn=tune_fakes.quick)
    err = capsys.readouterr().err
    assert "carried 0 trials" in err
    assert "label_smoothing was 0.1 there and is fixed at 0.0 here" in err
    other_budget = make_params(
        {
            "train": {"batch_size": 64},
            "tune": {**base["tune"], "tuning_max_epochs": 3, "warm_start_from": "previous"},
        }
    )
    run_tune(other_budget, out, train_fn=tune_fakes.quick)
    assert "no earlier study to carry trials from" in capsys.readouterr().err
