"""DVC stage `visualize`: the study's plots, the training plots, intervals and backtest.

Thin on purpose: the stage is
:func:`stockclf.pipeline.visualize.run_visualize`; dvc.yaml passes every path as a
flag. Bad params or data end with ``error: <message>`` and exit status 2.
"""

from stockclf.pipeline.script import stage_main
from stockclf.pipeline.visualize import VisualizePaths, describe, run_visualize

if __name__ == "__main__":
    stage_main(run_visualize, VisualizePaths, describe, __doc__.splitlines()[0])
