"""Features and labels on values small enough to check by hand."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from stockclf.data.features import compute_features
from stockclf.data.labels import classify, trailing_volatility, z_scores
from stockclf.data.loading import load_csv


def test_feature_arithmetic_on_known_values(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2020-01-02,99,105,95,100,1000\n"
        "2020-01-03,100,121,100,110,2000\n"
        "2020-01-06,110,110,88,99,500\n",
        encoding="utf-8",
    )
    s = load_csv(path)
    names = ["close_open", "log_return", "volume_change", "hl_range"]
    f = compute_features(s, names)
    assert f.shape == (4, 3) and f.dtype == np.float64
    assert np.isnan(f[:, 0]).all()  # day 0 has no previous day
    np.testing.assert_allclose(
        f[:, 1], [math.log(1.1), math.log(1.1), math.log(2.0), math.log(1.21)], rtol=1e-12
    )
    np.testing.assert_allclose(
        f[:, 2], [math.log(0.9), math.log(0.9), math.log(0.25), math.log(1.25)], rtol=1e-12
    )


def test_label_arithmetic_on_hand_made_series() -> None:
    x = 0.1
    e = math.exp
    # log returns of days 1..6: +x, -x, +x, +x, -2x, 0
    close = np.array([100, 100 * e(x), 100, 100 * e(x), 100 * e(2 * x), 100, 100])
    z = z_scores(close, horizon=2, vol_window=2)
    # t=2: sigma = std([x, -x], ddof=1) = x*sqrt(2); r = log(C4/C2) = 2x -> z = 2x / (x*sqrt2*sqrt2)
    assert z[2] == pytest.approx(1.0, rel=1e-9)
    # t=3: sigma = std([-x, x]) = x*sqrt(2); r = log(C5/C3) = -x -> z = -0.5
    assert z[3] == pytest.approx(-0.5, rel=1e-9)
    # independent check against the textbook formula
    r = [math.log(close[i] / close[i - 1]) for i in range(1, 7)]
    expected_t3 = math.log(close[5] / close[3]) / (statistics.stdev(r[1:3]) * math.sqrt(2))
    assert z[3] == pytest.approx(expected_t3, rel=1e-12)
    # t=4: returns [+x, +x] -> sigma 0 -> unusable; t<2: no volatility; t>4: no forward close
    assert np.isnan(z[[0, 1, 4, 5, 6]]).all()
    assert trailing_volatility(close, 2)[4] == pytest.approx(0.0, abs=1e-12)
    # classes: strict inequalities, so z = -0.5 is flat at threshold 0.5 and down below it
    assert classify(z[[2, 3]], 0.5).tolist() == [2, 1]
    assert classify(z[[2, 3]], 0.49).tolist() == [2, 0]
    assert classify(np.array([-3.0, 0.0, 3.0]), 0.0).tolist() == [0, 1, 2]
