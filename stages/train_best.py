"""DVC stage `train_best`: train with tune's best params, score the test split once.

Thin on purpose: the stage is
:func:`stockclf.pipeline.train_best.run_train_best`; dvc.yaml passes every path as a
flag. Bad params or data end with ``error: <message>`` and exit status 2.
"""

from stockclf.pipeline.script import stage_main
from stockclf.pipeline.train_best import TrainBestPaths, describe, run_train_best

if __name__ == "__main__":
    stage_main(run_train_best, TrainBestPaths, describe, __doc__.splitlines()[0])
