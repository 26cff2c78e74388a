"""``python -m benchmarks.samplers --smoke``: a TPE and a GP study on row 4's synthetic
problem, and the report's figures checked against the trials they came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import samplers as bench


def test_smoke_compares_gp_with_tpe(tmp_path: Path, one_torch_thread) -> None:
    out, figures = tmp_path / "samplers.md", tmp_path / "samplers.json"
    assert bench.main(["--smoke", "--out", str(out), "--json", str(figures)]) == 0
    measured = json.loads(figures.read_text())
    assert measured["seeds"] == [42] and sorted(measured["studies"]) == ["gp", "tpe"]
    for sampler, (study,) in measured["studies"].items():
        values = study["values"]
        assert len(values) == 3 and None not in values  # no pruning: every trial completes
        assert study["best"] == pytest.approx(max(values))
        assert all(0 <= v <= 1 for v in values)
        assert measured["gaps"][sampler] == [
            pytest.approx(study["best"] - measured["studies"]["tpe"][0]["best"])
        ]
    # Trial 0 is params.yaml's point under every sampler, trained with the same seed.
    assert measured["studies"]["gp"][0]["values"][0] == pytest.approx(
        measured["studies"]["tpe"][0]["values"][0]
    )
    text = out.read_text()
    gp = measured["studies"]["gp"][0]
    assert f"| 42 | gp | {gp['best']:.4f} | {measured['gaps']['gp'][0]:+.4f} |" in text
    assert "| tpe | " in text and "wins / ties / losses vs TPE" in text


def test_the_reference_sampler_is_required() -> None:
    with pytest.raises(SystemExit) as error:
        bench.parse_args(["--samplers", "gp", "random"])
    assert error.value.code == 2
