"""One tuning worker: claim a trial, train it, record it, until the study has
``n_trials`` finished trials, the deadline passes, too many trials fail, or a signal comes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from stockclf.config import Params
from stockclf.tuning.artifacts import ArtifactKeeper
from stockclf.tuning.checkpoints import CheckpointKeeper
from stockclf.tuning.claims import claim_lock
from stockclf.tuning.objective import Objective, TrainFn, release_memory
from stockclf.tuning.ownership import OWNER_ATTR, owner_record, sweep_stale_trials
from stockclf.tuning.signals import StopSignals, TuneInterrupted
from stockclf.tuning.storage import open_tuning_storage
from stockclf.tuning.study import open_study
from stockclf.tuning.trials import RetryTrial, count_trials

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (picklable: sent to spawned processes)."""

    params: Params
    prepared_dir: Path
    trials_root: Path
    study_name: str
    storage_url: str
    deadline: float | None = None  # time.time() after which no new trial starts
    train_fn: TrainFn | None = None
    artifacts: Path | None = None  # the dashboard's artifact store; None: no uploads
    poll_s: float = 2.0  # how often a worker waiting for others' trials looks again

    @property
    def failure_limit(self) -> int:
        return max(3, self.params.tune.n_trials)


class Worker:
    """Runs trials of one study in this process until the study has ``n_trials`` finished
    trials, the deadline passes, too many trials fail, or a signal arrives."""

    def __init__(
        self,
        spec: WorkerSpec,
        study: optuna.Study,
        storage: BaseStorage,
        stops: StopSignals,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        tune = spec.params.tune
        self.spec = spec
        self.study = study
        self.storage = storage
        self.stops = stops
        self.claim = claim_lock(spec.storage_url, storage, spec.study_name)
        self.retry = RetryTrial(tune.max_retry)
        self.objective = Objective(
            spec.params, spec.prepared_dir, spec.trials_root, train_fn=spec.train_fn, stops=stops
        )
        keep = tune.keep_top_k
        keepers: list[Callback] = [CheckpointKeeper(spec.trials_root, keep)]
        if spec.artifacts is not None:
            keepers.append(ArtifactKeeper(storage, spec.artifacts, spec.trials_root, keep))
        self.callbacks = [*keepers, *callbacks]
        self.current: int | None = None

    def failures_since(self, first: int) -> int:
        """Trials failed by their params (not by a signal or a dead worker) in this run."""
        return sum(
            1
            for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
            if t.number >= first and t.user_attrs.get("failure") not in ("interrupted", "stale")
        )

    def run(self) -> str:
        """Work until there is nothing left; return why: done, timeout or failures."""
        # This run's trials: those created from now on, and those queued before it and not
        # yet run (params.yaml's trial 0, retries), which this run will run.
        trials = self.study.get_trials(deepcopy=False)
        waiting = [t.number for t in trials if t.state == optuna.trial.TrialState.WAITING]
        first = min([len(trials), *waiting])
        while True:
            self.stops.check()
            if self.spec.deadline is not None and time.time() >= self.spec.deadline:
                return "timeout"
            if self.failures_since(first) >= self.spec.failure_limit:
                return "failures"
            step = self._claim_and_run()
            if step == "done":
                return "done"
            if step == "wait":
                time.sleep(self.spec.poll_s)

    def _claim_and_run(self) -> str:
        target = self.spec.params.tune.n_trials
        self.claim.acquire()
        try:
            sweep_stale_trials(
                self.study, self.storage, self.spec.params.tune.grace_period, self.retry
            )
            count = count_trials(self.study, target)
            if count.reached:
                return "done"
            if not count.claimable:
                return "wait"
            self.stops.check()
            self.current = None
            try:
                # optimize() does what a trial needs (ask, heartbeat thread, tell, catch);
                # _run_claimed releases the claim once the trial exists.
                self.study.optimize(
                    self._run_claimed,
                    n_trials=1,
                    catch=(Exception,),
                    callbacks=self.callbacks,
                    gc_after_trial=False,
                )
            except TuneInterrupted:
                self._retry_interrupted()
                raise
            finally:
                release_memory()
            return "ran"
        finally:
            self.claim.release()

    def _run_claimed(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        trial.set_user_attr(OWNER_ATTR, owner_record())
        self.claim.release()
        return self.objective(trial)

    def _retry_interrupted(self) -> None:
        if self.current is None:
            return
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number == self.current and trial.state.is_finished():
                self.retry(self.study, trial)


def run_in_process(
    spec: WorkerSpec,
    study: optuna.Study,
    storage: BaseStorage,
    stops: StopSignals,
    callbacks: Sequence[Callback] = (),
) -> str:
    """One worker in this process (``n_jobs: 1``): no spawn cost, and tests can patch it."""
    return Worker(spec, study, storage, stops, callbacks).run()


def worker_main(spec: WorkerSpec, index: int) -> None:
    """Entry point of a spawned worker process; the exit code says how it ended."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with StopSignals() as stops:
        storage = open_tuning_storage(spec.storage_url, spec.params.tune)
        study = open_study(spec.params, spec.study_name, storage, worker=index)
        try:
            Worker(spec, study, storage, stops).run()
        except TuneInterrupted as err:
            sys.exit(err.exit_code)
