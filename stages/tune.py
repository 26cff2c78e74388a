"""DVC stage `tune`: bring the Optuna study up to tune.n_trials finished trials.

Thin on purpose: the stage is
:func:`stockclf.pipeline.tune.run_tune`; dvc.yaml passes every path as a
flag. Bad params or data end with ``error: <message>`` and exit status 2.
"""

from stockclf.pipeline.script import stage_main
from stockclf.pipeline.tune import TunePaths, describe, run_tune

if __name__ == "__main__":
    stage_main(run_tune, TunePaths, describe, __doc__.splitlines()[0])
