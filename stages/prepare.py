"""DVC stage `prepare`: validate the prices (or .npz) and write windows, labels and splits.

Thin on purpose: the stage is
:func:`stockclf.pipeline.prepare.run_prepare`; dvc.yaml passes every path as a
flag. Bad params or data end with ``error: <message>`` and exit status 2.
"""

from stockclf.pipeline.prepare import PreparePaths, describe, run_prepare
from stockclf.pipeline.script import stage_main

if __name__ == "__main__":
    stage_main(run_prepare, PreparePaths, describe, __doc__.splitlines()[0])
