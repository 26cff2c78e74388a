"""The benchmark suite's machinery, and its smoke mode end to end (so that it keeps working).

The smoke mode measures nothing (tiny sizes, one repeat); these tests check that every row
runs and lands in the results file with figures, not what the figures are.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import suite
from benchmarks.common import Context, Row, interleaved

ROW = re.compile(r"^\| (\d) \| (.+?) \| (.+?) \| (.+?) \| (yes|\*\*no\*\*|n/a) \|$", re.M)


def test_interleaved_rotates_the_order_of_cases() -> None:
    calls: list[str] = []

    def case(name: str, figure: float):
        return lambda: calls.append(name) or figure

    figures = interleaved({"a": case("a", 1.0), "b": case("b", 2.0), "c": case("c", 3.0)}, 3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert figures == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [3.0] * 3}


def test_fewer_than_three_repeats_is_refused_outside_smoke(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        suite.main(["--repeats", "2", "--out", "unused.md"])
    assert exit_info.value.code == 2
    assert "at least 3" in capsys.readouterr().err


def test_a_failing_row_is_reported_and_the_others_kept(monkeypatch, tmp_path: Path) -> None:
    def fake_row(number: int, ctx: Context) -> Row:
        if number == 2:
            raise RuntimeError("row two broke")
        return Row(number, f"measure {number}", "t", f"figure {number}", True, "m", ["- d"])

    monkeypatch.setattr(suite, "run_row", fake_row)
    out = tmp_path / "RESULTS.md"
    assert suite.main(["--smoke", "--only", "1", "2", "3", "--out", str(out)]) == 1
    text = out.read_text()
    assert "| 1 | measure 1 | figure 1 | t | yes |" in text
    assert "| 3 | measure 3 | figure 3 | t | yes |" in text
    assert "error: RuntimeError" in text and "row two broke" in text


@pytest.mark.slow
def test_smoke_suite_writes_every_row(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmark results\n\nSMOKE MODE")
    assert "| torch |" in text and "| cores |" in text
    summary = ROW.findall(text)
    assert [int(r[0]) for r in summary] == [1, 2, 3, 4, 5, 6, 7]
    for number, _measure, result, _target, _met in summary:
        assert re.search(r"\d", result), f"row {number} has no figure: {result}"
        assert not result.startswith("error"), result
        assert f"Command: `python -m benchmarks --only {number} --smoke`" in text
