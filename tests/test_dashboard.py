"""The top trials' checkpoint and training curves in Optuna's artifact store, and what
optuna-dashboard shows of them (its real server, on 127.0.0.1, read over its HTTP API)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import tune_fakes
from helpers import child_env
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from test_tune_parallel import postgres_url  # noqa: F401 (its fixture, by name below)

from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning import artifacts
from stockclf.tuning.artifacts import ArtifactStore, listings, sync_artifacts, upload_trial
from stockclf.tuning.checkpoints import top_trials
from stockclf.tuning.storage import open_tuning_storage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def with_curves(params, prepared_dir, trial, live_dir, checkpoint_dir) -> float:
    """:func:`tune_fakes.quick` plus the dvclive curve files a real trial writes."""
    value = tune_fakes.quick(params, prepared_dir, trial, live_dir, checkpoint_dir)
    for split in ("train", "val"):
        for name in ("loss", "f1"):
            path = live_dir / "plots" / "metrics" / split / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"step\t{name}\n0\t0.5\n1\t{value}\n")
    return value


def journal_params(make_params, root: Path, **tune):
    params = make_params({"tune": {"pruner": "none", **tune}})
    return tune_fakes.on_journal(params, root / "study.journal")


def tuned(make_params, root: Path, prepared: Path, **tune):
    """A tune stage run on a journal study whose trials log curves: its params and paths."""
    params = journal_params(make_params, root, **tune)
    out = TunePaths.under(root / "tuning", prepared)
    run_tune(params, out, train_fn=with_curves)
    return params, out


def study_and_storage(params) -> tuple[optuna.Study, BaseStorage]:
    storage = open_tuning_storage(params.tune.storage)
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage), storage


def listed(study: optuna.Study, storage: BaseStorage) -> dict[int, list[str]]:
    """Trial number -> the file names listed for it."""
    study_id = storage.get_study_id_from_name(study.study_name)
    numbers = {
        storage.get_trial_id_from_study_id_trial_number(study_id, t.number): t.number
        for t in study.trials
    }
    out: dict[int, list[str]] = {}
    for listing in listings(storage, study_id):
        out.setdefault(numbers[listing.trial_id], []).append(listing.filename)
    return {n: sorted(names) for n, names in out.items()}


def expected(numbers) -> dict[int, list[str]]:
    return {n: sorted([artifacts.checkpoint_name(n), artifacts.figure_name(n)]) for n in numbers}


def store_matches_listings(study, storage, store_dir: Path) -> None:
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = {listing.artifact_id for listing in listings(storage, study_id)}
    assert {p.name for p in store_dir.iterdir()} == ids


@pytest.mark.parametrize("kind", ["memory", "sqlite", "journal"])
def test_a_finished_trial_cannot_be_given_a_listing(kind: str, tmp_path: Path) -> None:
    # Why listings are study attrs: a trial leaves the top k after it finished, and no
    # storage lets a finished trial's system attrs change.
    storage = {
        "memory": lambda: optuna.storages.InMemoryStorage(),
        "sqlite": lambda: RDBStorage(f"sqlite:///{tmp_path / 's.db'}"),
        "journal": lambda: JournalStorage(JournalFileBackend(str(tmp_path / "s.journal"))),
    }[kind]()
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, 0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_system_attr(trial_id, "artifacts:x", "{}")
    storage.set_study_system_attr(study_id, "still", "writable")  # the study's attrs are
    assert storage.get_study_system_attrs(study_id)["still"] == "writable"


def test_keys_are_those_optuna_and_the_dashboard_read() -> None:
    from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX
    from optuna_dashboard.artifact._backend import DASHBOARD_ARTIFACTS_ATTR_PREFIX

    assert artifacts.TRIAL_KEY == DASHBOARD_ARTIFACTS_ATTR_PREFIX
    assert artifacts.OPTUNA_KEY == ARTIFACTS_ATTR_PREFIX


def test_artifacts_follow_the_top_k(make_params, tiny_prepared: Path, tmp_path: Path) -> None:
    params = journal_params(make_params, tmp_path, n_trials=6, keep_top_k=2)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    history = []

    def look(study, trial) -> None:  # runs after the worker's keepers
        storage = open_tuning_storage(params.tune.storage)
        history.append((trial.number, listed(study, storage), sorted(top_trials(study, 2))))

    run_tune(params, out, train_fn=with_curves, callbacks=[look])
    assert len(history) == 6
    for number, names, top in history:
        assert names == expected(top), number  # uploaded on entry, removed on leaving
    study, storage = study_and_storage(params)
    assert listed(study, storage) == expected(top_trials(study, 2))
    store_matches_listings(study, storage, out.artifacts)
    for listing in listings(storage, storage.get_study_id_from_name(study.study_name)):
        body = (out.artifacts / listing.artifact_id).read_bytes()
        meta = json.loads(listing.value)
        if listing.filename.endswith(".ckpt"):
            assert body == b"weights"  # the trial's checkpoint, as the fake wrote it
            assert meta["mimetype"] == "application/octet-stream"
        else:
            assert body.startswith(PNG_MAGIC)
            assert meta["mimetype"] == "image/png"

    # keep_top_k lowered on a rerun: the second trial's files go, listings and store alike
    run_tune(tune_fakes.with_tune(params, keep_top_k=1), out, train_fn=with_curves)
    study, storage = study_and_storage(params)
    assert listed(study, storage) == expected(top_trials(study, 1))
    store_matches_listings(study, storage, out.artifacts)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_every_storage_kind(
    kind: str, make_params, tiny_prepared: Path, tmp_path: Path, request
) -> None:
    # the seed is part of the study name: a fresh study on a shared test database
    seed = os.getpid() * 1000 + len(str(tmp_path))
    params = make_params({"seed": seed, "tune": {"pruner": "none", "n_trials": 3, "keep_top_k": 1}})
    if kind == "postgresql":
        params = tune_fakes.with_tune(params, storage=request.getfixturevalue("postgres_url"))
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    name = None
    try:
        run_tune(params, out, train_fn=with_curves)
        name = json.loads(out.study_info.read_text())["study_name"]
        storage = open_tuning_storage(params.tune.storage)
        study = optuna.load_study(study_name=name, storage=storage)
        assert listed(study, storage) == expected(top_trials(study, 1))
        store_matches_listings(study, storage, out.artifacts)
        snapshot = RDBStorage(
            f"sqlite:///{out.study_db}"
        )  # what DVC versions, and the dashboard opens
        copy = optuna.load_study(study_name=name, storage=snapshot)
        assert listed(copy, snapshot) == expected(top_trials(study, 1))
    finally:
        if kind == "postgresql" and name is not None:
            optuna.delete_study(study_name=name, storage=params.tune.storage)


def test_a_rerun_repairs_the_store(make_params, tiny_prepared: Path, tmp_path: Path) -> None:
    params, out = tuned(make_params, tmp_path, tiny_prepared, n_trials=4, keep_top_k=2)
    study, storage = study_and_storage(params)
    study_id = storage.get_study_id_from_name(study.study_name)
    first, second = sorted(top_trials(study, 2))
    store = ArtifactStore(out.artifacts)
    by_trial = {}
    for listing in listings(storage, study_id):
        by_trial.setdefault(listing.filename, listing)
    # a crash's leftovers: a listed file gone, a listing gone, a duplicate, an orphan, a temp
    (out.artifacts / by_trial[artifacts.checkpoint_name(first)].artifact_id).unlink()
    storage.set_study_system_attr(study_id, by_trial[artifacts.figure_name(second)].key, "null")
    upload_trial(storage, study_id, second, out.trials, store)
    (out.artifacts / "0b8d2f4e-orphan").write_bytes(b"x")
    (out.artifacts / ".half-written.tmp").write_bytes(b"x")
    # an artifact of the study uploaded by Optuna's own call is not ours to delete
    own = out.artifacts.parent / "notes.txt"
    own.write_text("mine")
    theirs = optuna.artifacts.upload_artifact(
        artifact_store=store, file_path=str(own), study_or_trial=study
    )

    summary = run_tune(params, out, train_fn=with_curves)  # nothing left to run
    assert summary["n_complete"] == 4
    study, storage = study_and_storage(params)
    assert listed(study, storage) == expected([first, second])  # one of each, none missing
    names = {p.name for p in out.artifacts.iterdir()}
    ids = {listing.artifact_id for listing in listings(storage, study_id)}
    assert names == ids | {theirs}
    assert (out.artifacts / theirs).read_text() == "mine"


def test_a_study_seeded_from_its_snapshot_gets_its_files_again(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    # a fresh clone with a journal storage: the study comes back from tuning/study.db (which
    # copies trials and user attrs, not listings), the store from DVC as it was
    params, out = tuned(make_params, tmp_path, tiny_prepared, n_trials=3, keep_top_k=2)
    pulled = {p.name for p in out.artifacts.iterdir()}
    assert len(pulled) == 4
    (tmp_path / "study.journal").unlink()
    summary = run_tune(params, out, train_fn=with_curves)
    assert summary["n_complete"] == 3  # restored, nothing run
    study, storage = study_and_storage(params)
    assert listed(study, storage) == expected(top_trials(study, 2))
    store_matches_listings(study, storage, out.artifacts)
    assert not pulled & {p.name for p in out.artifacts.iterdir()}  # the old ids, unlisted, went


def test_sync_reports_what_it_did(make_params, tiny_prepared: Path, tmp_path: Path) -> None:
    params, out = tuned(make_params, tmp_path, tiny_prepared, n_trials=3, keep_top_k=1)
    study, storage = study_and_storage(params)
    study_id = storage.get_study_id_from_name(study.study_name)
    keys = sorted(listing.key for listing in listings(storage, study_id))
    assert len(keys) == 2  # the best trial's checkpoint and figure
    (out.artifacts / "stale").write_bytes(b"x")
    done = sync_artifacts(study, storage, out.trials, ArtifactStore(out.artifacts), keep_top_k=0)
    assert done == {"uploaded": [], "removed": keys, "orphans": ["stale"]}
    assert list(out.artifacts.iterdir()) == []
    assert listed(study, storage) == {}


def test_a_failed_upload_does_not_fail_the_study(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    params = journal_params(make_params, tmp_path, n_trials=3, keep_top_k=3)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    real, failed = artifacts.upload_trial, []

    def full_disk_once(storage, study_id, number, *args, **kwargs):
        if number == 1 and not failed:
            failed.append(number)
            raise OSError(28, "No space left on device")
        return real(storage, study_id, number, *args, **kwargs)

    monkeypatch.setattr(artifacts, "upload_trial", full_disk_once)
    summary = run_tune(params, out, train_fn=with_curves)
    assert summary["n_complete"] == 3 and failed == [1]
    err = capsys.readouterr().err
    assert "warning: trial 1: its dashboard artifacts were not updated" in err
    assert "No space left on device" in err
    study, storage = study_and_storage(params)
    assert listed(study, storage) == expected([0, 1, 2])  # the stage's sync uploaded trial 1


def test_two_worker_processes_share_one_store(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    params = journal_params(make_params, tmp_path, n_trials=6, keep_top_k=2, n_jobs=2)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(params, out, train_fn=tune_fakes.two_workers)
    study, storage = study_and_storage(params)
    ran_by = {p.name for p in out.trials.glob("trial_*/ran_by_*")}
    assert len(ran_by) == 2  # both processes ran trials (and uploaded their own)
    top = top_trials(study, 2)
    assert listed(study, storage) == {n: [artifacts.checkpoint_name(n)] for n in top}
    store_matches_listings(study, storage, out.artifacts)


# --- optuna-dashboard's own server ---------------------------------------------------------


def dashboard_command() -> str:
    beside = Path(sys.executable).with_name("optuna-dashboard")
    assert beside.is_file(), f"{beside}: optuna-dashboard is not installed (the dev extra)"
    return str(beside)


@contextlib.contextmanager
def dashboard(url: str, artifact_dir: Path) -> Iterator[str]:
    """``optuna-dashboard URL --artifact-dir DIR`` on 127.0.0.1 and a free port; yields its
    base URL, and stops it on the way out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [dashboard_command(), url, "--artifact-dir", str(artifact_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env(), text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise AssertionError(f"optuna-dashboard exited: {server.communicate()[0]}")
            try:
                urllib.request.urlopen(f"{base}/api/meta", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "optuna-dashboard did not start in 60 s"
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.communicate(timeout=30)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def put_note(base: str, study_id: int) -> int:
    body = json.dumps({"version": 1, "body": "a note"}).encode()
    request = urllib.request.Request(
        f"{base}/api/studies/{study_id}/note",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_dashboard_lists_the_top_trials_artifacts(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    params = journal_params(make_params, tmp_path, n_trials=4, keep_top_k=2)
    # another study first, so the journal's trial ids are not the snapshot's
    other = optuna.create_study(storage=open_tuning_storage(params.tune.storage))
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(params, out, train_fn=with_curves)
    storage = open_tuning_storage(params.tune.storage)
    name = json.loads(out.study_info.read_text())["study_name"]
    top = top_trials(optuna.load_study(study_name=name, storage=storage), 2)
    before = md5(out.study_db)

    with dashboard(f"sqlite:///{out.study_db}", out.artifacts) as base:
        (study,) = get_json(f"{base}/api/studies")["study_summaries"]
        assert study["study_name"] == name
        detail = get_json(f"{base}/api/studies/{study['study_id']}")
        trials = {t["number"]: t for t in detail["trials"]}
        assert sorted(trials) == [0, 1, 2, 3]
        for number, trial in trials.items():
            names = sorted(a["filename"] for a in trial["artifacts"])
            assert names == expected(top).get(number, []), number
        for number in top:
            for artifact in trials[number]["artifacts"]:
                url = f"{base}/artifacts/{study['study_id']}/{trials[number]['trial_id']}"
                with urllib.request.urlopen(f"{url}/{artifact['artifact_id']}") as response:
                    body = response.read()
                    kind = response.headers["Content-Type"]
                assert body == (out.artifacts / artifact["artifact_id"]).read_bytes()
                assert kind == artifact["mimetype"]
        assert md5(out.study_db) == before  # browsing writes nothing
        assert put_note(base, study["study_id"]) == 204
    assert md5(out.study_db) != before  # a note does: the DVC output changed


def test_a_read_only_dashboard_refuses_notes(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    _, out = tuned(make_params, tmp_path, tiny_prepared, n_trials=2, keep_top_k=1)
    before = md5(out.study_db)
    url = f"sqlite:///file:{out.study_db}?mode=ro&uri=true"  # SQLite's read-only open
    with dashboard(url, out.artifacts) as base:
        (study,) = get_json(f"{base}/api/studies")["study_summaries"]
        detail = get_json(f"{base}/api/studies/{study['study_id']}")
        with_files = [t["number"] for t in detail["trials"] if t["artifacts"]]
        assert len(detail["trials"]) == 2 and len(with_files) == 1
        assert put_note(base, study["study_id"]) == 500  # the write is refused
    assert md5(out.study_db) == before
