"""MiniRocket: the time-series classifier a user would pick instead of the image model.

MiniRocket (Dempster, Schmidt and Webb, 2021) convolves each window with 10,000 fixed,
dilated kernels of length 9, pools each output into the proportion of positive values,
and fits a ridge classifier on those features. It is fast, needs no tuning and is among
the most accurate classifiers on the UCR/UEA archives, so a model that does not beat it
has no reason to exist. aeon's implementation is used as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from aeon.classification.convolution_based import MiniRocketClassifier

from stockclf.data.store import SplitData

#: MiniRocket's kernels span 9 time steps; aeon refuses shorter series.
MIN_LENGTH = 9


def pad_to_min_length(X: np.ndarray) -> np.ndarray:
    """``X`` (N x C x L) as float32, windows shorter than :data:`MIN_LENGTH` padded.

    The padding goes in front of the oldest step and repeats it (``np.pad`` mode
    ``edge``): a constant extension adds no jump for the kernels to respond to, whatever
    the scale of the channel, whereas zeros (aeon's suggestion) would be a jump wherever
    a channel is not centred on 0. The windows keep their most recent steps at the end.
    """
    X = np.asarray(X, dtype=np.float32)
    short = MIN_LENGTH - X.shape[-1]
    if short <= 0:
        return X
    return np.pad(X, ((0, 0), (0, 0), (short, 0)), mode="edge")


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Give torch back its thread count when the block ends.

    aeon runs MiniRocket under numba's OpenMP threading layer, and on the way out it sets
    numba's thread count to the number of cores, not to what it was. That layer shares
    its OpenMP runtime with torch, so without this a thread limit the user set
    (``OMP_NUM_THREADS=1``, ``torch.set_num_threads``) would be gone for every network
    trained after MiniRocket in the same process. Two such processes on two cores then
    ran each training step 5 times slower.
    """
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def minirocket_predictions(train: SplitData, test: SplitData, seed: int) -> np.ndarray:
    """Class ids MiniRocket predicts for ``test``, fitted on ``train`` only.

    ``class_weight="balanced"`` as for the ``logreg`` baseline: the score is macro F1, and
    an unweighted ridge fit on imbalanced classes mostly says the frequent class. One
    thread (``n_jobs=1``) and ``random_state=seed`` make the result the same on every run.
    """
    clf = MiniRocketClassifier(class_weight="balanced", n_jobs=1, random_state=seed)
    with torch_threads_kept():
        clf.fit(pad_to_min_length(train.X), np.asarray(train.y, dtype=np.int64))
        return np.asarray(clf.predict(pad_to_min_length(test.X)), dtype=np.int64)
