"""The prepare stage as DVC runs it: ``stages/prepare.py`` exits 2 with one ``error:`` line
and keeps the previous outputs for every kind of bad input; and ``dvc repro`` reruns it when
a file of data.source changes."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO, copy_repo, sh
from ohlcv_files import (
    HEADER,
    cell,
    edit_lines,
    make_ohlcv,
    set_cell,
    snapshot,
    two_symbols,
    write_frame,
)

#: Windows and dates that fit the two small made-up symbols (600 and 560 days from 2010).
SMALL_DATA = {
    "window": 16,
    "horizon": 3,
    "vol_window": 5,
    "val_start": "2011-06-01",
    "test_start": "2011-11-01",
}


def _stage_dir(tmp_path: Path, **data: object) -> Path:
    work = tmp_path / "work"
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["data"].update(source="csvs", **SMALL_DATA, **data)
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    two_symbols(work / "csvs")
    return work


def _run_stage(work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "stages" / "prepare.py"),
            "--params",
            "params.yaml",
            "--out",
            "data/prepared",
            "--summary",
            "reports/prepare.json",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stage_script_bad_then_good_data(tmp_path: Path) -> None:
    work = _stage_dir(tmp_path)
    good = (work / "csvs" / "AAA.csv").read_text(encoding="utf-8")
    lines = good.splitlines()
    set_cell(lines, 42, "Date", "not-a-date")
    (work / "csvs" / "AAA.csv").write_text("\n".join(lines), encoding="utf-8")
    bad = _run_stage(work)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error: ")
    assert "AAA.csv: line 42, column 'Date': unparsable date" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (work / "data").exists() and not (work / "reports").exists()

    (work / "csvs" / "AAA.csv").write_text(good, encoding="utf-8")
    ok = _run_stage(work)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads((work / "reports" / "prepare.json").read_text(encoding="utf-8"))
    assert summary["n_symbols"] == 2 and summary["train"]["n"] > 0
    assert (work / "data" / "prepared" / "meta.json").exists()


def test_stage_script_bad_params(tmp_path: Path) -> None:
    work = _stage_dir(tmp_path, windwo=3)
    res = _run_stage(work)
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and "data.windwo: unknown key" in res.stderr
    assert "Traceback" not in res.stderr


# -------------------------------------------------- each kind of bad input through the stage
#
# Each case corrupts the input of a work directory that already holds a good prepare
# output, runs the stage script (in-process, through the same ``run_main`` as DVC's
# subprocess) and checks: exit status 2, one ``error:`` line naming the file, the row or
# column and the problem, no traceback, and the previous outputs byte for byte unchanged
# with no temporary leftovers.


def _set_data(work: Path, **values: object) -> None:
    raw = yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))
    raw["data"].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")


def _case_missing_directory(work: Path) -> list[str]:
    _set_data(work, source="nowhere")
    return ["nowhere: directory not found"]


def _case_no_csv_files(work: Path) -> list[str]:
    (work / "notes").mkdir()
    (work / "notes" / "README.txt").write_text("no prices here", encoding="utf-8")
    _set_data(work, source="notes")
    return ["notes: no CSV files (*.csv) found"]


def _case_empty_file(work: Path) -> list[str]:
    (work / "csvs" / "AAA.csv").write_text("", encoding="utf-8")
    return ["AAA.csv: empty file"]


def _case_header_only(work: Path) -> list[str]:
    (work / "csvs" / "AAA.csv").write_text(HEADER + "\n", encoding="utf-8")
    return ["AAA.csv: header only, no data rows"]


def _case_missing_column(work: Path) -> list[str]:
    write_frame(make_ohlcv(600, seed=2).drop(columns=["Low"]), work / "csvs" / "BBB.csv")
    return [
        "BBB.csv: missing required column(s) low",
        "found columns: Date, Open, High, Close, Adj Close, Volume",
    ]


#: A cell's new value: a literal, or made from the file's lines and the cell's line.
CellValue = str | Callable[[list[str], int], str]


def _bad_cell(
    symbol: str, line: int, column: str, value: CellValue, problem: str, *more: str
) -> Callable[[Path], list[str]]:
    """The case that sets one cell of ``<symbol>.csv``; the error names the file, the line
    and the column, then ``problem`` (and the ``more`` fragments anywhere after)."""

    def case(work: Path) -> list[str]:
        def edit(lines: list[str]) -> None:
            set_cell(lines, line, column, value if isinstance(value, str) else value(lines, line))

        edit_lines(work / "csvs" / f"{symbol}.csv", edit)
        return [f"{symbol}.csv: line {line}, column '{column}': {problem}", *more]

    return case


def _scaled(column: str, factor: float) -> CellValue:
    """The same line's ``column`` times ``factor``."""
    return lambda lines, line: str(float(cell(lines, line, column)) * factor)


def _previous_date(lines: list[str], line: int) -> str:
    return cell(lines, line - 1, "Date")


def _case_dates_out_of_order(work: Path) -> list[str]:
    def swap(lines: list[str]) -> None:
        lines[199], lines[200] = lines[200], lines[199]  # file lines 200 and 201

    edit_lines(work / "csvs" / "AAA.csv", swap)
    return ["AAA.csv: line 201, column 'Date'", "strictly increasing", "not sorted"]


def _case_missing_values(work: Path) -> list[str]:
    def blank(lines: list[str]) -> None:
        set_cell(lines, 90, "Close", "")
        set_cell(lines, 91, "Volume", "null")

    edit_lines(work / "csvs" / "BBB.csv", blank)
    _set_data(work, max_gap=1)
    return [
        "BBB.csv: line 90, column 'Close': empty cell (missing value)",
        "2 consecutive row(s) with missing values (lines 90-91)",
        "data.max_gap = 1",
    ]


def _case_series_too_short(work: Path) -> list[str]:
    write_frame(make_ohlcv(24, "2010-01-01"), work / "csvs" / "BBB.csv")
    return ["BBB.csv: only 24 data rows; at least 25 are needed"]


def _case_binary_file(work: Path) -> list[str]:
    (work / "csvs" / "AAA.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return ["AAA.csv: not a UTF-8 text CSV"]


def _case_not_utf8_text(work: Path) -> list[str]:
    text = (work / "csvs" / "BBB.csv").read_text(encoding="utf-8").replace("2010-03-01", "Mär")
    (work / "csvs" / "BBB.csv").write_bytes(text.encode("latin-1"))
    return ["BBB.csv: not UTF-8 text (invalid byte 0xe4 on line 3)"]


def _case_empty_split(work: Path) -> list[str]:
    _set_data(work, val_start="2011-06-01", test_start="2011-06-10")
    return [
        "split 'val' (decision dates from 2011-06-01 to before 2011-06-10) has no samples",
        "Adjust data.val_start / data.test_start",
    ]


def _case_npz_length_mismatch(work: Path) -> list[str]:
    np.savez(work / "arrays.npz", X=np.zeros((50, 16)), y=np.zeros(49, dtype=int))
    _set_data(work, source="arrays.npz")
    return ["arrays.npz: array 'X' has 50 rows but array 'y' has 49 labels"]


def _case_npz_non_integer_labels(work: Path) -> list[str]:
    y = np.arange(50) % 3.0
    y[7] = 1.5
    np.savez(work / "arrays.npz", X=np.zeros((50, 16)), y=y)
    _set_data(work, source="arrays.npz")
    return ["arrays.npz: array 'y', row 7: label 1.5 is not an integer class id"]


#: Numbered by the kind of bad input (1-13); several kinds have two variants.
STAGE_CASES = {
    "01-missing-directory": _case_missing_directory,
    "01-no-csv-files": _case_no_csv_files,
    "02-empty-file": _case_empty_file,
    "02-header-only": _case_header_only,
    "03-missing-column": _case_missing_column,
    "04-unparsable-date": _bad_cell(
        "AAA", 42, "Date", "2011-02-30", "unparsable date '2011-02-30'"
    ),
    "05-duplicate-dates": _bad_cell(
        "BBB", 101, "Date", _previous_date, "duplicate date", "first seen on line 100"
    ),
    "06-dates-out-of-order": _case_dates_out_of_order,
    "07-non-numeric-price": _bad_cell("AAA", 50, "Open", "12.3.4", "not a number: '12.3.4'"),
    "07-non-positive-price": _bad_cell("BBB", 60, "Low", "-0.5", "non-positive price -0.5"),
    "08-high-below-low": _bad_cell("AAA", 70, "High", _scaled("Low", 0.9), "high", "is below low"),
    "08-close-outside-range": _bad_cell(
        "AAA", 80, "Close", _scaled("High", 1.05), "close", "is outside [low, high]"
    ),
    "09-missing-values-beyond-max-gap": _case_missing_values,
    "10-series-too-short": _case_series_too_short,
    "11-binary-file": _case_binary_file,
    "11-not-utf8-text": _case_not_utf8_text,
    "12-split-without-samples": _case_empty_split,
    "13-npz-length-mismatch": _case_npz_length_mismatch,
    "13-npz-non-integer-labels": _case_npz_non_integer_labels,
}


def _run_stage_in_process(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run stages/prepare.py as ``__main__`` in ``work``; returns (exit status, stderr)."""
    monkeypatch.chdir(work)
    argv = ["prepare.py", "--params", "params.yaml", "--out", "data/prepared"]
    monkeypatch.setattr(sys, "argv", [*argv, "--summary", "reports/prepare.json"])
    capsys.readouterr()
    try:
        runpy.run_path(str(REPO / "stages" / "prepare.py"), run_name="__main__")
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(STAGE_CASES))
def test_stage_refuses_bad_input_and_keeps_previous_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    work = _stage_dir(tmp_path)
    code, err = _run_stage_in_process(work, monkeypatch, capsys)
    assert code == 0, err
    before = {name: snapshot(work / name) for name in ("data", "reports")}
    assert "prepared/train/X.npy" in before["data"] and "prepare.json" in before["reports"]

    fragments = STAGE_CASES[case](work)
    code, err = _run_stage_in_process(work, monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    after = {name: snapshot(work / name) for name in ("data", "reports")}
    assert after == before  # no file changed, none added (no temporary directory left)


# ------------------------------------------------------------------- DVC follows data.source


@pytest.mark.slow
def test_dvc_reruns_prepare_when_a_file_of_the_source_changes(tmp_path: Path) -> None:
    """The README flow: CSVs in data/raw, ``dvc add data/raw``, ``data.source: data/raw``."""
    repo = copy_repo(tmp_path / "repo")
    raw = repo / "data" / "raw"
    write_frame(make_ohlcv(600, "2010-01-01", seed=1), raw / "AAA.csv")
    write_frame(make_ohlcv(560, "2010-02-26", seed=2), raw / "BBB.csv")
    sh("dvc", "add", "data/raw", cwd=repo)
    raw_params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    raw_params["data"].update(source="data/raw", **SMALL_DATA)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw_params), encoding="utf-8")

    first = sh("dvc", "repro", "prepare", cwd=repo)
    assert "Running stage 'prepare'" in first.stdout
    assert "up to date" in sh("dvc", "status", "prepare", cwd=repo).stdout
    locked = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    deps = {d["path"] for d in locked["stages"]["prepare"]["deps"]}
    assert "data/raw" in deps and "data/sample" not in deps

    edit_lines(raw / "BBB.csv", lambda lines: set_cell(lines, 500, "Volume", "1234567"))
    status = sh("dvc", "status", "prepare", cwd=repo).stdout
    assert "modified:" in status and "data/raw" in status, status
    second = sh("dvc", "repro", "prepare", cwd=repo)
    assert "Running stage 'prepare'" in second.stdout
    assert "up to date" in sh("dvc", "status", "prepare", cwd=repo).stdout

    # a bad file now stops the stage with the file, line and problem, exit status non-zero
    edit_lines(raw / "AAA.csv", lambda lines: set_cell(lines, 7, "Date", "2010-13-45"))
    bad = sh("dvc", "repro", "prepare", cwd=repo, check=False)
    assert bad.returncode != 0
    assert "AAA.csv: line 7, column 'Date': unparsable date '2010-13-45'" in bad.stderr
