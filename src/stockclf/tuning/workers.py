"""Tuning workers: processes that share one study until it has ``n_trials`` finished trials.

A worker repeats: *claim* a trial, train it, record it. The claim is what makes several
workers (processes on one machine, or machines sharing a PostgreSQL study) add up to
exactly ``n_trials`` finished trials, none twice:

- under a lock (a ``flock`` for file storages, a PostgreSQL advisory lock for a server),
  the worker fails stale trials, counts finished and running ones, and creates its trial
  only if finished + running < ``n_trials``; otherwise it waits for the running ones
  (one may fail and need replacing) or stops when the target is met;
- the lock is released as soon as the trial exists, so training runs in parallel.

Stale trials (their worker was killed) are found two ways. Each trial records its owner
(host, boot id, pid and process start time), so a trial whose owner process on this host
is gone is failed at once, for every storage. SQLite and PostgreSQL also carry Optuna's
heartbeats, which catch workers that died on another machine after ``grace_period``. A
journal file has no heartbeats: it is for workers on one machine. Each stale trial is
failed with its reason and queued again (``tune.max_retry``).
"""

# Over 300 lines: it holds four jobs (trial ownership, claim locks, the worker loop, process
# management) that the planned split of the tuning package gives a module each (issue 11).

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.storages import BaseStorage

from stockclf.config import Params
from stockclf.tuning.checkpoints import CheckpointKeeper
from stockclf.tuning.objective import Objective, TrainFn, release_memory
from stockclf.tuning.signals import StopSignals, TuneInterrupted
from stockclf.tuning.storage import open_tuning_storage, storage_file
from stockclf.tuning.study import FINISHED, RetryTrial, fail_trial, open_study

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
RUNNING = optuna.trial.TrialState.RUNNING
OWNER_ATTR = "worker"


# --- who runs a trial ----------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


HOST, BOOT = socket.gethostname(), _boot_id()


def owner_record() -> dict[str, Any]:
    """This process, identified so that a later run can tell whether it is still alive."""
    return {
        "host": HOST,
        "boot": BOOT,
        "pid": os.getpid(),
        "started": psutil.Process().create_time(),
    }


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process that owns a trial is alive; None when it ran on another host."""
    if owner.get("host") != HOST:
        return None
    if owner.get("boot") != BOOT:
        return False  # this machine rebooted since
    try:
        proc = psutil.Process(int(owner["pid"]))
        if abs(proc.create_time() - float(owner["started"])) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
        return False


def sweep_stale_trials(
    study: optuna.Study, storage: BaseStorage, grace_period: float, retry: RetryTrial
) -> list[int]:
    """Fail (and queue again) the RUNNING trials whose worker is gone; return their numbers.

    Optuna's heartbeat check comes first (server and SQLite storages; its stale callback is
    ``retry``). Then a trial whose owner process on this host has exited is failed at once.
    A trial without an owner (its worker died between creating it and recording itself) is
    failed once it is older than ``grace_period``.
    """
    with _quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    swept = []
    now = dt.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(RUNNING,)):
        owner = trial.user_attrs.get(OWNER_ATTR)
        if owner is None:
            started = trial.datetime_start or now
            if (now - started).total_seconds() <= grace_period:
                continue
            reason = f"no worker recorded itself for this trial within {grace_period:.0f} s"
        elif owner_alive(owner) is False:
            reason = (
                f"its worker (pid {owner.get('pid')} on {owner.get('host')}) died during the "
                f"trial (killed, or the machine restarted)"
            )
        else:
            continue
        if fail_trial(storage, study, trial.number, reason, kind="stale"):
            swept.append(trial.number)
            retry(study, trial)
    return swept


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


# --- the claim lock -------------------------------------------------------------------------


class FileClaimLock:
    """``flock`` on a file in the temp directory, one per storage file: processes on this
    machine only (which is what SQLite and journal storages are for). Released by the
    kernel if the holder dies."""

    def __init__(self, storage_path: Path) -> None:
        key = hashlib.sha256(str(storage_path.resolve()).encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"stockclf-claim-{key}.lock"
        self._fh: Any = None

    def acquire(self) -> None:
        if self._fh is None:
            self._fh = self.path.open("a")
            fcntl.flock(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class AdvisoryClaimLock:
    """A PostgreSQL session advisory lock keyed by the study name: one claim at a time over
    every machine. Released by the server if the holder's connection drops."""

    def __init__(self, engine: Any, study_name: str) -> None:
        self.engine = engine
        self.key = int.from_bytes(
            hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True
        )
        self._conn: Any = None

    def acquire(self) -> None:
        from sqlalchemy import text

        if self._conn is None:
            self._conn = self.engine.connect()
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            self._conn.commit()

    def release(self) -> None:
        from sqlalchemy import text

        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None


def claim_lock(
    url: str, storage: BaseStorage, study_name: str
) -> FileClaimLock | AdvisoryClaimLock:
    path = storage_file(url)
    if path is not None:
        return FileClaimLock(path)
    return AdvisoryClaimLock(storage.engine, study_name)


@contextlib.contextmanager
def holding(lock: FileClaimLock | AdvisoryClaimLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


# --- one worker -----------------------------------------------------------------------------


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
    poll_s: float = 2.0  # how often a worker waiting for others' trials looks again

    @property
    def failure_limit(self) -> int:
        return max(3, self.params.tune.n_trials)


def connect(spec_or_params: WorkerSpec | Params, url: str | None = None) -> BaseStorage:
    """Open the study storage with heartbeats and the retry of stale trials."""
    params = spec_or_params.params if isinstance(spec_or_params, WorkerSpec) else spec_or_params
    tune = params.tune
    return open_tuning_storage(
        url or tune.storage,
        heartbeat_interval=tune.heartbeat_interval,
        grace_period=tune.grace_period,
        stale_callback=RetryTrial(tune.max_retry),
    )


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
        self.callbacks = [CheckpointKeeper(spec.trials_root, tune.keep_top_k), *callbacks]
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
        first = len(self.study.get_trials(deepcopy=False))
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
            trials = self.study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            running = sum(t.state == RUNNING for t in trials)
            if finished >= target:
                return "done"
            if finished + running >= target:
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
        storage = connect(spec, spec.storage_url)
        study = open_study(spec.params, spec.study_name, storage, worker=index)
        try:
            Worker(spec, study, storage, stops).run()
        except TuneInterrupted as err:
            sys.exit(err.exit_code)


# --- several processes ----------------------------------------------------------------------


def visible_gpus(accelerator: str) -> list[str]:
    """The CUDA devices workers may be spread over (empty on CPU-only runs)."""
    if accelerator in ("cpu", "mps"):
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    import torch  # only here: importing torch costs ~2 s

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_environment(index: int, n_workers: int, gpus: Sequence[str]) -> dict[str, str]:
    """Per-worker environment: a share of the CPU threads, and one GPU each when there are
    several. Measured on 2 busy cores: two workers with 2 OpenMP threads each ran a tiny
    trial in 8-23 s, with 1 thread each in 1.6-1.9 s (spinning threads fight for cores)."""
    env = {}
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_workers))
    if len(gpus) > 1:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_processes(
    spec: WorkerSpec,
    n_workers: int,
    stops: StopSignals,
    on_poll: Callable[[], None] = lambda: None,
) -> list[tuple[str, int | None]]:
    """Run ``n_workers`` worker processes (spawned: no state shared with this one, safe
    with CUDA) and wait for them; return (name, exit code) of those that failed.

    A signal to this process is passed on to them as SIGTERM; each fails its running trial
    and exits, then :class:`TuneInterrupted` is raised here.
    """
    ctx = multiprocessing.get_context("spawn")
    gpus = visible_gpus(spec.params.train.accelerator)
    procs = []
    for index in range(n_workers):
        with environment(worker_environment(index, n_workers, gpus)):
            proc = ctx.Process(
                target=worker_main, args=(spec, index), name=f"stockclf-tune-{index}"
            )
            proc.start()
        procs.append(proc)
    forwarded = False
    while alive := [p for p in procs if p.is_alive()]:
        if stops.signum is not None and not forwarded:
            for proc in alive:
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(proc.pid, signal.SIGTERM)  # type: ignore[arg-type]
            forwarded = True
        multiprocessing.connection.wait([p.sentinel for p in alive], timeout=1.0)
        on_poll()
    on_poll()
    if stops.signum is not None:
        raise TuneInterrupted(stops.signum)
    return [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
