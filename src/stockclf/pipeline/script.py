"""What every stage script does: flags -> params and paths -> the stage function.

One convention for all four stages: ``--params`` plus one flag per field of the stage's
paths dataclass (``model_dir`` -> ``--model-dir``), every one of them spelled in dvc.yaml,
so no script derives a file name of its own.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stockclf.config import Params, load_params
from stockclf.errors import run_main

P = TypeVar("P")


def parse_paths(
    paths_type: type[P], description: str, argv: Sequence[str] | None = None
) -> tuple[Path, P]:
    """The params file and the stage's paths from the command line (all flags required)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    for field in dataclasses.fields(paths_type):  # type: ignore[arg-type]
        parser.add_argument(
            "--" + field.name.replace("_", "-"), dest=field.name, type=Path, required=True
        )
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(paths_type)}  # type: ignore[arg-type]
    return args.params, paths_type(**values)


def path_flags(paths: Any) -> list[str]:
    """The flags that :func:`parse_paths` reads back as ``paths`` (for running a stage
    script by hand or from a test)."""
    flags = []
    for field in dataclasses.fields(paths):
        flags += ["--" + field.name.replace("_", "-"), str(getattr(paths, field.name))]
    return flags


def stage_main(
    run: Callable[[Params, P], dict[str, Any] | None],
    paths_type: type[P],
    describe: Callable[[dict[str, Any]], str],
    description: str,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse, run the stage, print ``describe(result)``; user errors and signals end the
    process with a one-line message and a non-zero exit (:func:`stockclf.errors.run_main`)."""

    def main() -> None:
        params_file, paths = parse_paths(paths_type, description, argv)
        result = run(load_params(params_file), paths)
        if result is not None:  # None: a DDP rank other than 0, which reports nothing
            print(describe(result))

    run_main(main)
