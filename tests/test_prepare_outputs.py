"""What prepare writes (meta, dtypes, chunked windows), and that a run that fails leaves
the previous output byte for byte as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ohlcv_files import set_cell, small_params, snapshot, two_symbols

import stockclf.data.prepare as prepare_module
from stockclf.data import store
from stockclf.data.loading import OHLCV
from stockclf.data.prepare import prepare
from stockclf.errors import DataError
from stockclf.files import write_json


def test_meta_and_dtypes(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir), features=["close_open", "log_return"])
    summary = prepare(params, tmp_path / "out", tmp_path)
    meta = store.load_meta(tmp_path / "out")
    assert meta == {
        "symbols": ["AAA", "BBB"],
        "features": ["close_open", "log_return"],
        "classes": ["down", "flat", "up"],
        "window": 16,
        "horizon": 3,
        "n_channels": 2,
    }
    s = store.load_split(tmp_path / "out", "val")
    assert s.X.dtype == np.float32 and s.X.shape == (summary["val"]["n"], 2, 16)
    assert s.y.dtype == np.int64 and s.symbols.dtype == np.int32
    assert s.dates.dtype == np.dtype("datetime64[D]")
    assert summary["n_symbols"] == 2
    assert summary["val"]["first_date"] == str(s.dates[0])
    fracs = [summary["val"][f"frac_{c}"] for c in ("down", "flat", "up")]
    assert sum(fracs) == pytest.approx(1.0, abs=1e-5)
    assert fracs[0] == pytest.approx(float((s.y == 0).mean()), abs=1e-6)


def test_failed_run_leaves_previous_output_untouched(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    out = tmp_path / "results" / "prepared"
    summary_path = tmp_path / "results" / "prepare.json"
    params = small_params(source=str(data_dir))
    write_json(summary_path, prepare(params, out, tmp_path))
    before = snapshot(out)
    summary_before = summary_path.read_bytes()
    assert {"meta.json", "train/X.npy", "test/y.npy"} <= set(before)

    lines = (data_dir / "BBB.csv").read_text(encoding="utf-8").splitlines()
    set_cell(lines, 300, "Close", "oops")
    (data_dir / "BBB.csv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"BBB\.csv: line 300"):
        prepare(params, out, tmp_path)
    assert snapshot(out) == before
    assert summary_path.read_bytes() == summary_before
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepare.json", "prepared"]


# ---------------------------------------------------------------------------- chunked output


def test_chunked_windows_equal_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir))
    prepare(params, tmp_path / "one", tmp_path)
    # 7 samples per chunk: chunks mix both symbols and split them at odd places
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", 7 * 3 * params.window * 4)
    prepare(params, tmp_path / "many", tmp_path)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "many")
    X = np.load(tmp_path / "many" / "train" / "X.npy", mmap_mode="r")
    assert X.dtype == np.float32 and X.shape[1:] == (3, params.window) and X.shape[0] > 7


def test_failure_while_writing_windows_keeps_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir))
    out = tmp_path / "results" / "prepared"
    prepare(params, out, tmp_path)
    before = snapshot(out)
    original = prepare_module.compute_features

    def poisoned(series: OHLCV, names: list[str]) -> np.ndarray:
        values = original(series, names)
        if series.symbol == "BBB":
            values[1, 500] = np.nan  # a test-split window of BBB: found while writing test
        return values

    monkeypatch.setattr(prepare_module, "compute_features", poisoned)
    with pytest.raises(DataError, match=r"BBB\.csv: non-finite feature values in the window"):
        prepare(params, out, tmp_path)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepared"]


def test_write_npy_stream_checks_row_count(tmp_path: Path) -> None:
    chunks = [np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32)]
    store.write_npy_stream(tmp_path / "a.npy", np.float32, (5, 2), iter(chunks))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.concatenate(chunks))
    with pytest.raises(ValueError, match="4 rows written, 5 declared"):
        store.write_npy_stream(
            tmp_path / "b.npy", np.float32, (5, 2), iter(chunks[:1] * 1 + [chunks[0][:1]])
        )
