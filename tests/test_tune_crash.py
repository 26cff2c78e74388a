"""Crash safety: killed workers, signals in a real training, stale trials, broken journals."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import tune_fakes
import yaml
from helpers import REPO, child_env
from tune_fakes import COMPLETE, FAIL, PRUNED, RUNNING, WAITING

from stockclf.pipeline.script import path_flags
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning.identity import identify
from stockclf.tuning.ownership import BOOT, HOST, OWNER_ATTR, owner_record, sweep_stale_trials
from stockclf.tuning.storage import open_tuning_storage
from stockclf.tuning.trials import RetryTrial


def start_stage(params_file: Path, prepared: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(REPO / "stages/tune.py"), "--params", str(params_file)]
    cmd += path_flags(TunePaths.under(out, prepared))
    return subprocess.Popen(
        cmd,
        cwd=out.parent,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    """Wait until the stage has written ``path`` (or fail the test)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"stage exited early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {path}")
        time.sleep(0.02)


def first_epoch_done(out: Path, number: int) -> Path:
    """Written by dvclive at the end of a trial's first epoch: the trial is inside fit."""
    return out / "trials" / f"trial_{number:04d}" / "plots" / "metrics" / "train" / "loss.tsv"


def test_sigkill_then_sigterm_mid_trial_then_resume(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    """The stage killed mid-trial keeps its finished trials; the stale trial is failed and
    retried; SIGTERM in Lightning's fit fails the trial; the third run reaches n_trials."""
    params = make_params(
        {
            "model": {"backbone": "test_efficientnet"},
            # 6 epochs, no early stop: a signal sent after epoch 1 lands inside the training
            "train": {"early_stopping_patience": 10},
            "tune": {"n_trials": 3, "pruner": "none", "tuning_max_epochs": 6, "keep_top_k": 1},
        }
    )
    params_file = tmp_path / "params.yaml"  # written by make_params
    out = tmp_path / "tuning"
    _, name = identify(params, tiny_prepared)

    def trials() -> dict[int, optuna.trial.FrozenTrial]:
        storage = open_tuning_storage(params.tune.storage)
        return {t.number: t for t in optuna.load_study(study_name=name, storage=storage).trials}

    # run 1: SIGKILL in the middle of the second trial (trial 0 finished)
    proc = start_stage(params_file, tiny_prepared, out)
    wait_for_file(first_epoch_done(out, 1), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = trials()
    killed = before[1]
    assert before[0].state == COMPLETE
    assert killed.state == RUNNING  # what a killed worker leaves behind
    assert killed.user_attrs[OWNER_ATTR]["pid"] == proc.pid

    # run 2: the killed trial is failed and queued again as trial 2; SIGTERM in its fit
    proc = start_stage(params_file, tiny_prepared, out)
    wait_for_file(first_epoch_done(out, 2), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "interrupted by SIGTERM" in stderr
    stopped = trials()[2]

    # run 3: resumes to n_trials
    proc = start_stage(params_file, tiny_prepared, out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]

    after = trials()
    # the trial finished before the kill is kept as it was
    assert (after[0].state, after[0].value, after[0].params) == (
        COMPLETE,
        before[0].value,
        before[0].params,
    )
    dead = after[killed.number]
    assert dead.state == FAIL and dead.user_attrs["failure"] == "stale"
    assert f"pid {killed.user_attrs[OWNER_ATTR]['pid']}" in dead.user_attrs["fail_reason"]
    interrupted = after[stopped.number]
    assert interrupted.state == FAIL and interrupted.user_attrs["failure"] == "interrupted"
    assert interrupted.user_attrs["fail_reason"] == "interrupted by SIGTERM during the trial"
    assert interrupted.system_attrs["failed_trial"] == killed.number  # it was the retry
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert [t.state for t in retries] == [FAIL, COMPLETE]
    assert all(t.params == dead.params for t in retries)
    finished = [t for t in after.values() if t.state in (COMPLETE, PRUNED)]
    assert len(finished) == 3
    assert "3 complete" in stdout


def test_stale_trials_of_dead_local_workers_are_swept(tmp_path: Path) -> None:
    storage = open_tuning_storage(f"journal:///{tmp_path / 's.journal'}")
    study = optuna.create_study(study_name="s", storage=storage)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    owners = {
        "dead": {"host": HOST, "boot": BOOT, "pid": int(gone.stdout), "started": 1.0},
        "rebooted": {**owner_record(), "boot": "another-boot"},
        "alive": owner_record(),
        "remote": {**owner_record(), "host": "elsewhere"},
    }
    numbers = {}
    for label, owner in owners.items():
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(OWNER_ATTR, owner)
        numbers[label] = trial.number
    ownerless = study.ask()  # died between creating the trial and recording itself

    swept = sweep_stale_trials(study, storage, grace_period=3600, retry=RetryTrial(1))
    assert sorted(swept) == sorted([numbers["dead"], numbers["rebooted"]])
    trials = study.get_trials(deepcopy=False)
    assert trials[numbers["alive"]].state == trials[numbers["remote"]].state == RUNNING
    assert trials[ownerless.number].state == RUNNING  # younger than the grace period
    assert "died during the trial" in trials[numbers["dead"]].user_attrs["fail_reason"]
    queued = [t for t in trials if t.state == WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in queued) == sorted(swept)
    assert {t.params["x"] for t in queued} == {trials[n].params["x"] for n in swept}

    assert sweep_stale_trials(study, storage, grace_period=0, retry=RetryTrial(0)) == [
        ownerless.number
    ]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_heartbeat_fails_and_retries_a_trial_of_a_worker_on_another_machine(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    """SQLite/PostgreSQL: a remote worker's silent trial fails after grace_period."""
    params = make_params(
        {"tune": {"n_trials": 2, "pruner": "none", "heartbeat_interval": 1, "grace_period": 2}}
    )
    _, name = identify(params, tiny_prepared)
    remote = open_tuning_storage(params.tune.storage, params.tune)
    study = optuna.create_study(study_name=name, storage=remote, direction="maximize")
    trial = study.ask()
    lr = trial.suggest_float("lr_head", 0.0003, 0.01, log=True)
    trial.set_user_attr(OWNER_ATTR, {**owner_record(), "host": "gpu-box-2"})
    remote.record_heartbeat(
        remote.get_trial_id_from_study_id_trial_number(remote.get_study_id_from_name(name), 0)
    )
    time.sleep(2.5)  # no heartbeat since: stale

    run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared), train_fn=tune_fakes.quick)
    trials = optuna.load_study(study_name=name, storage=params.tune.storage).trials
    assert trials[0].state == FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == COMPLETE and retry[0].params["lr_head"] == lr
    assert sum(t.state == COMPLETE for t in trials) == 2


def test_half_written_journal_line_is_repaired(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "tuning" / "study.journal"
    params = tune_fakes.on_journal(
        make_params({"tune": {"n_trials": 2, "pruner": "none"}}), journal
    )
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(params, out, train_fn=tune_fakes.quick)
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code":5,"worker_id":"crashed-mid-wr')

    summary = run_tune(tune_fakes.with_tune(params, n_trials=3), out, train_fn=tune_fakes.quick)
    assert summary["n_complete"] == 3
    (backup,) = journal.parent.glob("study.journal.broken-*")
    assert backup.read_bytes().endswith(b"crashed-mid-wr")
    assert journal.read_bytes().startswith(whole)
    # the outputs are written from the repaired journal: the best of the three trials
    study = tune_fakes.load_only_study(params)
    best = yaml.safe_load(out.best_params.read_text())
    assert set(best) == set(params.tune.parameter_ranges)
    assert best["lr_head"] == pytest.approx(study.best_trial.params["lr_head"])
