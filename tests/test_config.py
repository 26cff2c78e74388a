from pathlib import Path

import pytest
import yaml

from stockclf.config import TUNABLE, ModelParams, ParamsError, TrainParams, load_params
from stockclf.tuning.space import with_values


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_repo_params_load_and_cover_every_tunable(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    # the default search is the training hyperparameters; the model and recipe are tunable
    # too (test_pipeline checks the eight names in best_params.yaml)
    assert len(params.tune.parameter_ranges) == 8
    assert set(params.tune.parameter_ranges) < set(TUNABLE)
    assert params.tune.metric == "val_f1"


def test_each_tunable_lives_exactly_once_among_model_and_train() -> None:
    for name in TUNABLE:
        owners = [cls for cls in (ModelParams, TrainParams) if name in cls.model_fields]
        assert len(owners) == 1, name


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "lr_haed", 0.1, "train.lr_haed: unknown key"),
        ("train", "max_epochs", "many", "train.max_epochs: Input should be a valid integer"),
        ("tune", "n_trails", 3, "tune.n_trails: unknown key"),
        ("data", "val_start", "2017-01-01", "data: Value error, val_start (2017-01-01) must be"),
    ],
)
def test_bad_keys_and_types_name_the_key(
    tmp_path: Path, repo_params_dict: dict, section: str, key: str, value: object, expected: str
) -> None:
    repo_params_dict[section][key] = value
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, repo_params_dict))
    message = str(err.value).replace("Value error, ", "")
    assert str(tmp_path / "params.yaml") in message
    assert expected.replace("Value error, ", "") in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"low": 0.1, "high": 0.01}, "low (0.1) is greater than high (0.01)"),
        ({"low": 0.0, "high": 1.0, "log": True}, "log: true needs low > 0"),
        ({"choices": []}, "choices"),
    ],
)
def test_impossible_ranges_name_the_parameter(
    tmp_path: Path, repo_params_dict: dict, spec: dict, expected: str
) -> None:
    repo_params_dict["tune"]["parameter_ranges"]["lr_head"] = spec
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, repo_params_dict))
    assert "tune.parameter_ranges.lr_head" in str(err.value)
    assert expected in str(err.value)


def test_unknown_tunable_name_is_rejected(tmp_path: Path, repo_params_dict: dict) -> None:
    repo_params_dict["tune"]["parameter_ranges"]["momentum"] = {"low": 0.1, "high": 0.9}
    with pytest.raises(ParamsError, match=r"momentum.*map to no training param"):
        load_params(write(tmp_path, repo_params_dict))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_overrides_go_to_their_owning_section(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    tuned = with_values(params, {"lr_head": 0.123, "drop_path_rate": 0.2, "batch_size": 16})
    assert tuned.train.lr_head == 0.123
    assert tuned.train.batch_size == 16
    assert tuned.model.drop_path_rate == 0.2
    assert params.train.lr_head != 0.123  # the original is untouched
    with pytest.raises(ParamsError, match="not a tunable"):
        with_values(params, {"max_epochs": 3})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_gap", -1, "data.max_gap: Input should be greater than or equal to 0"),
        ("max_gap", 1.5, "data.max_gap: Input should be a valid integer"),
        ("val_fraction", 0.0, "data.val_fraction: Input should be greater than 0"),
        ("test_fraction", "many", "data.test_fraction: Input should be a valid number"),
        ("source", "", "data.source: String should have at least 1 character"),
        ("source", ["data/raw"], "data.source: Input should be a valid string"),
        ("window", "long", "data.window: Input should be a valid integer"),
        ("test_start", "2013-01-01", "val_start (2013-01-01) must be before test_start"),
    ],
)
def test_data_params_name_the_key(
    tmp_path: Path, repo_params_dict: dict, key: str, value: object, expected: str
) -> None:
    repo_params_dict["data"][key] = value
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, repo_params_dict))
    assert expected in str(err.value)


def test_npz_fractions_must_leave_rows_for_train(tmp_path: Path, repo_params_dict: dict) -> None:
    repo_params_dict["data"].update(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ParamsError, match=r"data: val_fraction \(0.5\) \+ test_fraction \(0.5\)"):
        load_params(write(tmp_path, repo_params_dict))
