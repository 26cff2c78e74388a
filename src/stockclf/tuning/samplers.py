"""The samplers and pruners that ``tune.sampler`` and ``tune.pruner`` name (registered in
:mod:`stockclf.registry`), and how a sampler is seeded so that resumed trials are new."""

from __future__ import annotations

import warnings

import optuna

from stockclf.config import TuneParams
from stockclf.registry import PRUNERS, SAMPLERS

# Factories registered in stockclf.registry: SAMPLERS (tune params, seed) -> sampler,
# PRUNERS tune params -> pruner.


def tpe_sampler(tune: TuneParams, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # constant_liar is "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=tune.n_startup_trials, constant_liar=True
        )


def random_sampler(tune: TuneParams, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def cmaes_sampler(tune: TuneParams, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=tune.n_startup_trials, warn_independent_sampling=False
    )


def gp_sampler(tune: TuneParams, seed: int) -> optuna.samplers.BaseSampler:
    """Gaussian-process Bayesian optimisation (Optuna 5); categorical params are sampled
    independently, which it would otherwise warn about on every trial."""
    return optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=tune.n_startup_trials, warn_independent_sampling=False
    )


def none_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def median_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.n_startup_trials, n_warmup_steps=tune.n_warmup_steps
    )


def successive_halving_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner()


def hyperband_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=tune.min_resource, max_resource=tune.tuning_max_epochs
    )


def wilcoxon_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    """Fold by fold against the best trial (``tune.folds >= 3``; the objective reports fold
    k's value at step k). Optuna marks it experimental, which it would warn about on
    every study."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(p_threshold=tune.wilcoxon_p_threshold)


def make_sampler(
    tune: TuneParams, seed: int, n_existing: int, worker: int = 0
) -> optuna.samplers.BaseSampler:
    """A sampler seeded from ``seed + n_existing`` (+ a stride per worker process).

    A seeded sampler that is simply re-created after a resume replays the same parameters
    (optuna issue 3255), and workers started together with one seed would propose the same
    points. TPE's ``constant_liar`` keeps parallel workers from sampling next to each
    other's running trials; with one worker there are none and it changes nothing.
    """
    return SAMPLERS.get(tune.sampler)(tune, seed + n_existing + 100_003 * worker)


def make_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    return PRUNERS.get(tune.pruner)(tune)
