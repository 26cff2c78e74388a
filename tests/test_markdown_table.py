"""The one markdown-table writer (``stockclf.reporting.markdown``) and the model card's two
tables written through it, without training a model."""

from __future__ import annotations

import numpy as np
import pytest

from stockclf.data.store import SplitData
from stockclf.evaluation.card import _score_lines, _split_lines
from stockclf.reporting.markdown import table


def test_header_rule_by_alignment_and_rows() -> None:
    assert table(["name", "n"], "lr", [["a", "1"], ["b", ""]]) == [
        "| name | n |",
        "| --- | ---: |",
        "| a | 1 |",
        "| b | |",
    ]
    assert table(["", ""], "ll", []) == ["| | |", "| --- | --- |"]


@pytest.mark.parametrize(
    ("align", "rows", "message"),
    [
        ("l", [], "align 'l': one letter l or r for each of 2 columns"),
        ("lc", [], "align 'lc': one letter l or r for each of 2 columns"),
        ("lr", [["a", "1", "x"]], "table row ['a', '1', 'x']: 3 cells, 2 columns"),
    ],
    ids=["too-few-letters", "unknown-letter", "row-too-wide"],
)
def test_a_table_that_would_shift_its_cells_is_refused(
    align: str, rows: list[list[str]], message: str
) -> None:
    with pytest.raises(ValueError) as err:
        table(["name", "n"], align, rows)
    assert str(err.value) == message


def _split(days: int) -> SplitData:
    dates = np.datetime64("2020-01-01") + np.arange(days)
    n = len(dates)
    return SplitData(np.zeros((n, 1, 4), np.float32), np.zeros(n, int), dates, np.zeros(n), dates)


def test_card_split_table_gives_each_split_its_count_and_dates() -> None:
    lines = _split_lines({"train": _split(3), "val": _split(1), "test": _split(0)})
    assert lines == [
        "| split | samples | first decision date | last decision date |",
        "| --- | --- | --- | --- |",
        "| train | 3 | 2020-01-01 | 2020-01-03 |",
        "| val | 1 | 2020-01-01 | 2020-01-01 |",
        "| test | 0 | - | - |",
    ]


def test_card_score_table_leaves_the_model_gain_empty_for_the_model() -> None:
    ci = {"f1_macro": 0.5, "f1_macro_ci_low": 0.4, "f1_macro_ci_high": 0.6}
    intervals = {
        "model": ci,
        "majority": {
            **ci,
            "model_gain": 0.25,
            "model_gain_ci_low": -0.1,
            "model_gain_ci_high": 0.3,
        },
    }
    results = {"model": {"accuracy": 0.55}, "majority": {"accuracy": 0.3}}
    assert _score_lines(results, intervals) == [
        "| predictor | test macro F1 | interval | model gain | gain interval | accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
        "| model | 0.5000 | [0.4000, 0.6000] | | | 0.5500 |",
        "| majority | 0.5000 | [0.4000, 0.6000] | +0.2500 | [-0.1000, +0.3000] | 0.3000 |",
    ]
