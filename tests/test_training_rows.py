"""Rows 1 to 3 of the benchmark suite judged from made-up figures: each row's figure is the
ratio of its cases' medians, and its target is met on the right side of its bound (the
smoke run in test_benchmarks.py checks the same on measured figures, slowly)."""

from __future__ import annotations

import pytest

from benchmarks.report import describe
from benchmarks.training_rows import (
    DataPathHeadroom,
    EncoderShare,
    LightningOverhead,
    StepSizes,
)

SIZES = StepSizes("efficientnet_b0", 32, 128, ("gasf",), 4, 3, 1, 1)


@pytest.mark.parametrize(
    ("row", "figure", "met", "result"),
    [
        (
            LightningOverhead(SIZES, 3, [1.02, 1.0, 1.1], [1.0, 0.9, 1.0]),
            0.02,
            True,
            "overhead +2.0%",
        ),
        (LightningOverhead(SIZES, 3, [1.05, 1.04], [1.0, 1.0]), 0.045, False, "overhead +4.5%"),
        (EncoderShare(SIZES, 6, [0.04, 0.05, 0.06], [1.0, 1.0, 1.0]), 0.05, True, "5.0% of a step"),
        (EncoderShare(SIZES, 6, [0.3], [1.0]), 0.3, False, "30.0% of a step"),
        (DataPathHeadroom(SIZES, 900, 8, [0.1], [0.5], [1.0]), 10.0, True, "10x headroom"),
        (
            DataPathHeadroom(SIZES, 900, 8, [0.2, 0.25], [0.5], [1.0, 1.0]),
            4.44,
            False,
            "4x headroom",
        ),
    ],
    ids=[
        "overhead-met",
        "overhead-missed",
        "share-met",
        "share-missed",
        "headroom-met",
        "headroom-missed",
    ],
)
def test_figure_is_a_ratio_of_medians_and_met_follows_the_bound(
    row: LightningOverhead | EncoderShare | DataPathHeadroom, figure: float, met: bool, result: str
) -> None:
    assert row.figure == pytest.approx(figure, abs=0.005)
    assert row.met is met
    words = describe(row)
    assert (words.met, words.result) == (met, result)


def test_an_overhead_beyond_the_noise_is_explained_as_not_met() -> None:
    words = describe(LightningOverhead(SIZES, 2, [1.05, 1.04], [1.0, 1.0]))
    assert words.explanation.startswith("Not met in this run: every Lightning run")
    noisy = describe(LightningOverhead(SIZES, 2, [1.05, 0.99], [1.0, 1.0]))
    assert noisy.explanation.startswith("The runs of the two cases overlap")
