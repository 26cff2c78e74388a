"""The four DVC stages, one module each, all of one shape.

Each module holds a ``<Stage>Paths`` dataclass (every file the stage reads or writes, as
dvc.yaml spells them) and ``run_<stage>(params, paths) -> dict``, a plain function. The
stage scripts in ``stages/`` only turn flags into those paths (:mod:`.script`).
"""
