"""Who runs a trial, and what to do with the trials whose worker is gone.

Each trial records its owner (host, boot id, pid and process start time), so a trial whose
owner process on this host is gone is failed at once, for every storage. SQLite and
PostgreSQL also carry Optuna's heartbeats, which catch workers that died on another machine
after ``grace_period``. A journal file has no heartbeats: it is for workers on one machine.
Each stale trial is failed with its reason and queued again (``tune.max_retry``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.storages import BaseStorage

from stockclf.tuning.trials import RUNNING, RetryTrial, fail_trial

OWNER_ATTR = "worker"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


HOST = socket.gethostname()


BOOT = _boot_id()


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
