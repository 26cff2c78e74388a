"""The places that must say the same thing do: params.yaml and the schema's defaults, every
registry entry and its factory, dvc.yaml's stage commands and the stages' path types."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from pydantic import BaseModel

from stockclf import config, registry
from stockclf.config import Params
from stockclf.pipeline.prepare import PreparePaths
from stockclf.pipeline.script import parse_paths, path_flags
from stockclf.pipeline.train_best import TrainBestPaths
from stockclf.pipeline.tune import TunePaths
from stockclf.pipeline.visualize import VisualizePaths
from stockclf.reporting.plots import PlotKind

STAGE_PATHS = {
    "prepare": PreparePaths,
    "tune": TunePaths,
    "train_best": TrainBestPaths,
    "visualize": VisualizePaths,
}


def _stage_argv(stage: str) -> list[str]:
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", f"stages/{stage}.py"], cmd
    return argv[2:]


def _defaults_disagreeing(model: type[BaseModel], values: dict, prefix: str) -> list[str]:
    wrong = []
    for name, field in model.model_fields.items():
        if field.is_required() or name not in values:
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            continue
        checked = model.model_validate({**_required(model, values), name: values[name]})
        parsed = getattr(checked, name)
        if parsed != default:
            wrong.append(f"{prefix}{name}: params.yaml {parsed!r}, schema default {default!r}")
    return wrong


def _required(model: type[BaseModel], values: dict) -> dict:
    return {n: values[n] for n, f in model.model_fields.items() if f.is_required()}


def test_schema_defaults_equal_params_yaml() -> None:
    """A default in config.py that disagrees with params.yaml would silently change what a
    params file without that key means; every section must agree key by key."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    sections = {
        "data": config.DataParams,
        "model": config.ModelParams,
        "train": config.TrainParams,
        "tune": config.TuneParams,
        "visualize": config.VisualizeParams,
        "evaluate": config.EvaluateParams,
    }
    wrong = _defaults_disagreeing(Params, raw, "")
    for section, model in sections.items():
        wrong += _defaults_disagreeing(model, raw[section], f"{section}.")
    assert wrong == []
    # and every key of the schema is written out in params.yaml, so users see it
    for section, model in sections.items():
        assert set(model.model_fields) == set(raw[section]), section


@pytest.mark.parametrize(
    "kind", [registry.FEATURES, registry.ENCODINGS, registry.SAMPLERS, registry.PRUNERS]
)
def test_every_registered_name_resolves_to_a_factory(kind: registry.Registry) -> None:
    assert len(kind) > 0
    for name in kind:
        assert callable(kind.get(name)), f"{kind.kind} {name}: {kind.entries[name]}"


def test_every_plot_name_resolves_and_params_refuse_an_unknown_one(make_params) -> None:
    for name in registry.PLOTS:
        assert isinstance(registry.PLOTS.get(name), PlotKind), name
    with pytest.raises(config.ParamsError, match=r"visualize.plots: unknown plot 'slicee'"):
        make_params({"visualize": {"plots": ["slicee"]}})
    with pytest.raises(config.ParamsError, match=r"tune.sampler: unknown sampler 'tpee'"):
        make_params({"tune": {"sampler": "tpee"}})
    with pytest.raises(config.ParamsError, match=r"model.encodings: encodings repeated"):
        make_params({"model": {"encodings": ["gasf", "gasf"]}})
    with pytest.raises(ValueError, match=r"unknown feature 'rsi'; choose from \['close_open'"):
        registry.FEATURES.check(["log_return", "rsi"])


@pytest.mark.parametrize("stage", sorted(STAGE_PATHS))
def test_dvc_yaml_passes_every_path_of_the_stage(stage: str) -> None:
    """The stage command in dvc.yaml names each field of the stage's paths type once, and
    those paths are the stage's deps or outputs, so nothing is derived behind DVC's back."""
    params_file, paths = parse_paths(STAGE_PATHS[stage], stage, _stage_argv(stage))
    assert params_file == Path("params.yaml")
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    declared = {d if isinstance(d, str) else next(iter(d)) for d in spec["deps"]}
    for key in ("outs", "metrics"):
        declared |= {o if isinstance(o, str) else next(iter(o)) for o in spec.get(key, [])}
    # a params file (train_best's best_params.yaml) is a dependency too
    declared |= {next(iter(p)) for p in spec.get("params", []) if isinstance(p, dict)}
    for field in dataclasses.fields(paths):
        path = getattr(paths, field.name).as_posix()
        # the path itself, a file inside a declared directory, or a directory of which the
        # stage reads only the declared files (visualize: data/prepared/meta.json)
        covered = [d for d in declared if path == d or path.startswith(d + "/")]
        covered += [d for d in declared if d.startswith(path + "/")]
        assert covered, (stage, path)


def test_tune_paths_under_names_what_dvc_yaml_names() -> None:
    _, from_dvc = parse_paths(TunePaths, "tune", _stage_argv("tune"))
    assert TunePaths.under(Path("tuning"), Path("data/prepared")) == from_dvc
    assert parse_paths(TunePaths, "tune", path_flags(from_dvc))[1] == from_dvc


def test_a_stage_script_without_a_path_flag_says_which(capsys) -> None:
    argv = _stage_argv("train_best")
    cut = argv.index("--predictions")
    with pytest.raises(SystemExit) as done:
        parse_paths(TrainBestPaths, "train_best", argv[:cut] + argv[cut + 2 :])
    assert done.value.code == 2
    assert "the following arguments are required: --predictions" in capsys.readouterr().err
