"""Typed view of ``params.yaml``, the project's one source of truth.

Every stage parses the file once through :func:`load_params`. Unknown keys and
wrong types are errors that name the offending key, raised before any work
starts, so a typo in ``dvc exp run -S`` cannot silently fall back to a default.
"""

# Over 300 lines on purpose: this is the whole schema of params.yaml, one model per section,
# the search-space ranges and the one parser, so that every key and its default are read in
# one place. The ranges cannot move out alone: their checks need the model and train
# sections (which names are numbers), and TuneParams needs the ranges, so a split would be
# a cycle between two modules.

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from stockclf.errors import StockclfError
from stockclf.registry import ENCODINGS, FEATURES, PLOTS, PRUNERS, SAMPLERS, Registry
from stockclf.storage_url import parse_storage_url

#: The hyperparameters the tune stage may search, and the section that owns each.
TUNABLE: dict[str, str] = {
    "lr_head": "train",
    "lr_backbone": "train",
    "lr_decay_rate": "train",
    "drop_path_rate": "model",
    "agc_clip_factor": "train",
    "batch_size": "train",
    "weight_decay": "train",
    "aux_loss_weight": "model",
    # the model itself, and the recipe
    "backbone": "model",
    "encodings": "model",
    "image_size": "model",
    "mtf_bins": "model",
    "raw_branch": "model",
    "fusion": "model",
    "label_smoothing": "train",
    "mixup_alpha": "train",
    "class_weights": "train",
    "warmup_epochs": "train",
    "early_stopping_patience": "train",
    "ema_decay": "train",
}


def registered(kind: Registry) -> AfterValidator:
    """A field whose names must be in ``kind`` (stockclf.registry), each at most once."""

    def check(names: Any) -> Any:
        kind.check(names)
        return names

    return AfterValidator(check)


class ParamsError(StockclfError, ValueError):
    """A params file that cannot be used; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class DataParams(_Strict):
    # A directory of OHLCV CSVs, an .npz file, or "sample" (an alias of data/sample). The
    # prepare stage's DVC dependency is ${data.source}, so params.yaml should hold a path.
    source: str = Field("data/sample", min_length=1)
    features: Annotated[list[str], registered(FEATURES)] = Field(
        default_factory=lambda: ["log_return", "hl_range", "volume_change"], min_length=1
    )
    window: int = Field(64, ge=4)
    horizon: int = Field(5, ge=1)
    vol_window: int = Field(20, ge=2)
    threshold: float = Field(0.5, ge=0)
    val_start: dt.date
    test_start: dt.date
    stride: int = Field(1, ge=1)
    # Longest run of rows with missing values that is forward-filled (0 = refuse any).
    max_gap: int = Field(0, ge=0)
    # Split by position of an .npz source without a split array (last rows = test).
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _dates_in_order(self) -> DataParams:
        if self.val_start >= self.test_start:
            raise ValueError(
                f"val_start ({self.val_start}) must be before test_start ({self.test_start})"
            )
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction ({self.val_fraction}) + test_fraction ({self.test_fraction}) "
                "must be below 1, leaving rows for train"
            )
        return self


class ModelParams(_Strict):
    backbone: str = "efficientnet_b0"
    pretrained: bool = False
    pretrained_path: str | None = None
    encodings: Annotated[list[str], registered(ENCODINGS)] = Field(
        default_factory=lambda: ["gasf", "gadf", "mtf"], min_length=1
    )
    # Side of the images; above the window length the series is interpolated up.
    image_size: int = Field(32, ge=8)
    mtf_bins: int = Field(8, ge=2)
    drop_path_rate: float = Field(0.1, ge=0, lt=1)
    aux_loss_weight: float = Field(0.3, ge=0)
    # Standardise each image channel and each window channel with training-split statistics.
    normalize: bool = True
    # Width of the 1-D convolutional branch on the window itself (0 = images only).
    raw_branch: int = Field(64, ge=0)
    # How the window branch joins the images: one head on both ("concat"), or a head and a
    # loss each, their probabilities averaged ("late"), so the images cannot crowd it out.
    fusion: Literal["concat", "late"] = "late"


class TrainParams(_Strict):
    max_epochs: int = Field(8, ge=1)
    batch_size: int = Field(128, ge=1)
    lr_head: float = Field(2e-3, gt=0)
    lr_backbone: float = Field(5e-4, gt=0)
    lr_decay_rate: float = Field(0.05, gt=0, le=1)
    warmup_epochs: float = Field(1, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    agc_clip_factor: float = Field(0.02, ge=0)
    early_stopping_patience: int = Field(3, ge=1)
    # Each run takes at least this many optimizer steps, whatever its epoch budget: epochs,
    # patience and warmup are stretched by the same factor on small data sets.
    min_steps: int = Field(400, ge=0)
    # The batch size min_steps counts batches of (None: train.batch_size). A tuning trial
    # that draws another batch size gets params.yaml's train.batch_size here, so the floor,
    # and the epochs of every trial of a study, do not depend on the draw.
    min_steps_batch_size: int | None = Field(None, ge=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    class_weights: Literal["none", "balanced"] = "balanced"  # balanced: n / (K * n_class)
    mixup_alpha: float = Field(0.4, ge=0)  # Beta(a, a) mixup of the windows; 0 = off
    # Which epoch a run keeps, and when it stops: the lowest validation loss ("loss"), or the
    # best tune.metric with ties to the lower loss ("metric"), or the last epoch, with no
    # early stopping ("last"). Trials are valued by tune.metric at the kept epoch.
    keep_epoch_by: Literal["loss", "metric", "last"] = "loss"
    # Decay of an exponential moving average of the weights, which validation, the kept
    # checkpoint and the final model use (0 = off, the raw weights).
    ema_decay: float = Field(0.0, ge=0, lt=1)
    # Networks trained side by side from different initialisations, their probabilities
    # averaged (train_best only: a tuning trial trains one, so tuning costs the same).
    ensemble: int = Field(3, ge=1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = "auto"
    channels_last: bool = True
    max_train_batches: int | None = Field(None, ge=1)
    # Where every run (each trial and train_best) writes its curves: dvclive always, since
    # dvc plots, the training-curve figure and the trial records read its files;
    # "tensorboard" adds event files of the same scalars beside them.
    loggers: list[Literal["dvclive", "tensorboard"]] = Field(default_factory=lambda: ["dvclive"])

    @field_validator("loggers")
    @classmethod
    def _dvclive_kept(cls, value: list[str]) -> list[str]:
        if "dvclive" not in value:
            raise ValueError(
                "dvclive is required: dvc plots and reports/figures read its files; "
                "for TensorBoard too, write [dvclive, tensorboard]"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"loggers repeated: {value}")
        return value


class FloatRange(_Strict):
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("log: true cannot be combined with step")
        return self


class CategoricalRange(_Strict):
    choices: list[Any] = Field(min_length=1)


def _range_kind(value: Any) -> str:
    """Which range a written mapping is, from its keys: with ``choices`` it is categorical,
    otherwise low/high. Only that one is validated, so an error names what is wrong with
    the range as written instead of every way it could have been another kind."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    return "CategoricalRange" if isinstance(value, dict) and "choices" in value else "FloatRange"


Range = Annotated[
    Annotated[FloatRange, Tag("FloatRange")] | Annotated[CategoricalRange, Tag("CategoricalRange")],
    Discriminator(_range_kind),
]


class TuneParams(_Strict):
    n_trials: int = Field(6, ge=1)
    timeout: float | None = Field(None, gt=0)
    tuning_max_epochs: int = Field(3, ge=1)
    metric: Literal["val_f1", "val_acc", "val_loss"] = "val_f1"
    direction: Literal["maximize", "minimize"] = "maximize"
    storage: str = "sqlite:///tuning/study.db"
    n_jobs: int = Field(1, ge=1)  # worker processes (not threads) the stage runs
    sampler: Annotated[str, registered(SAMPLERS)] = "tpe"
    pruner: Annotated[str, registered(PRUNERS)] = "median"
    n_startup_trials: int = Field(3, ge=0)
    # Walk-forward validation folds before data.test_start (1 = the train/val split alone).
    folds: int = Field(1, ge=1)
    n_warmup_steps: int = Field(1, ge=0)  # median pruner: a trial's first epochs never pruned
    min_resource: int = Field(1, ge=1)  # hyperband: epochs of a trial's first rung
    wilcoxon_p_threshold: float = Field(0.1, gt=0, lt=1)  # wilcoxon: prune below this p
    keep_top_k: int = Field(3, ge=0)  # trials whose best checkpoint is kept (0 = none)
    heartbeat_interval: int = Field(60, ge=1)  # seconds between a running trial's heartbeats
    grace_period: int = Field(180, ge=2)  # seconds without a heartbeat before a trial is stale
    max_retry: int = Field(2, ge=0)  # re-runs of a trial whose worker died or was stopped
    parameter_ranges: dict[str, Range] = Field(min_length=1)
    # Trial 0 of a new study is params.yaml's own point (each searched name at its value
    # there, where that lies in the range), so the defaults are always measured.
    warm_start: bool = True
    # A new study starts from the comparable finished trials of an earlier one in the same
    # storage: "previous" (the newest measured the same way), a study name, or null.
    warm_start_from: str | None = None

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, url: str) -> str:
        """Only storages the tuning engine can share safely between workers, and never a
        password: params.yaml is committed, so libpq reads it from PGPASSWORD or ~/.pgpass."""
        parse_storage_url(url, allow_password=False)
        return url

    @model_validator(mode="after")
    def _known_names(self) -> TuneParams:
        unknown = sorted(set(self.parameter_ranges) - set(TUNABLE))
        if unknown:
            raise ValueError(
                f"parameter_ranges names {unknown}, which map to no training param; "
                f"tunable names are {sorted(TUNABLE)}"
            )
        for name, spec in self.parameter_ranges.items():
            if isinstance(spec, FloatRange) and not tunable_is_numeric(name):
                raise ValueError(
                    f"parameter_ranges.{name}: {name} is not a number, so it takes "
                    "choices: [...], not low/high"
                )
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period ({self.grace_period}) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval}), or live trials would be failed as stale"
            )
        if self.min_resource > self.tuning_max_epochs:
            raise ValueError(
                f"tune.min_resource ({self.min_resource}) must be at most "
                f"tune.tuning_max_epochs ({self.tuning_max_epochs}): hyperband's first rung "
                "cannot be longer than a trial"
            )
        _check_fold_pruner(self.pruner, self.folds, self.wilcoxon_p_threshold)
        return self


#: Pruners that compare trials epoch by epoch; folds have no shared epoch steps.
EPOCH_PRUNERS = ("median", "successive_halving", "hyperband")


def _check_fold_pruner(pruner: str, folds: int, p_threshold: float) -> None:
    """Which pruners go with ``tune.folds``: the epoch pruners with one fold; wilcoxon with
    folds that leave it a chance to prune before the last fold (it tests at least two
    folds, its smallest one-sided p-value after n folds is 2^-n, and a prune after the last
    fold saves nothing)."""
    if folds > 1 and pruner in EPOCH_PRUNERS:
        raise ValueError(
            f"tune.pruner {pruner!r} compares trials epoch by epoch, but with tune.folds = "
            f"{folds} a trial reports one value per fold (each fold has its own epoch "
            "budget); use tune.pruner: wilcoxon (or none) with tune.folds > 1"
        )
    if pruner != "wilcoxon":
        return
    if folds < 3:
        raise ValueError(
            f"tune.pruner 'wilcoxon' needs tune.folds >= 3 (got {folds}): it compares a "
            "trial with the best one on at least two folds, and a prune after the last fold "
            "saves nothing (use median or hyperband with tune.folds = 1)"
        )
    smallest = 2.0 ** -(folds - 1)
    if smallest >= p_threshold:
        raise ValueError(
            f"tune.pruner 'wilcoxon' can never prune with tune.folds = {folds} and "
            f"tune.wilcoxon_p_threshold = {p_threshold}: after n folds its smallest p-value "
            f"is 2^-n, {smallest:g} after {folds - 1} folds (a prune after the last one "
            f"saves nothing); raise tune.wilcoxon_p_threshold above {smallest:g} or tune.folds"
        )


class VisualizeParams(_Strict):
    plots: Annotated[list[str], registered(PLOTS)] = Field(default_factory=lambda: list(PLOTS))
    dpi: int = Field(100, ge=30, le=600)


class EvaluateParams(_Strict):
    """How the visualize stage turns train_best's test predictions into intervals and a
    backtest (it never retrains)."""

    bootstrap_samples: int = Field(1000, ge=100)
    bootstrap_block_days: int = Field(20, ge=1)  # consecutive test dates per resampled block
    confidence: float = Field(0.95, gt=0, lt=1)
    cost_bps: float = Field(0.0, ge=0)  # backtest cost per unit of turnover; 0 = none


class Params(_Strict):
    seed: int = 42
    data: DataParams
    model: ModelParams
    train: TrainParams
    tune: TuneParams
    visualize: VisualizeParams = Field(default_factory=VisualizeParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)


def _tunable_type(name: str) -> Any:
    owner = {"model": ModelParams, "train": TrainParams}[TUNABLE[name]]
    return owner.model_fields[name].annotation


def tunable_is_int(name: str) -> bool:
    """Whether a tunable name is an integer param (searched with ``suggest_int``)."""
    return _tunable_type(name) is int


def tunable_is_numeric(name: str) -> bool:
    """Whether a tunable name takes a low/high range (an int or float param)."""
    return _tunable_type(name) in (int, float)


#: Keys that older params files have and this version does not, with what to do instead.
REMOVED_KEYS = {
    "train.num_workers": "removed: batches are gathered from tensors in memory, so there are "
    "no DataLoader workers to set; delete the key",
}


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid params"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("FloatRange", "Categ")))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = REMOVED_KEYS.get(key, "unknown key")
        lines.append(f"  {key or '<root>'}: {msg}")
    return "\n".join(lines)


def merge_params(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` applied section by section (nested dicts merged, any other
    value replaced): how shrunk test and benchmark configs are made from params.yaml."""
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_params(out[key], value)
        else:
            out[key] = value
    return out


def validate_params(data: Any, source: str) -> Params:
    """Validate a params mapping (as read from YAML); errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Parse and validate a params file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return validate_params(data, str(path))


def load_best_params(path: str | Path) -> dict[str, Any]:
    """Read ``best_params.yaml`` written by the tune stage (tunable name -> value)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run the tune stage first (dvc repro tune)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter names to values")
    unknown = sorted(set(data) - set(TUNABLE))
    if unknown:
        raise ParamsError(f"{path}: unknown parameters {unknown}")
    return data
