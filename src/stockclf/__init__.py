"""stockclf: tune and train a stock time-series image classifier, reproducibly with DVC."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_classifier"]


def __getattr__(name: str) -> Any:
    # ``stockclf.load_classifier`` without importing torch for every ``import stockclf``
    # (the stages and the CLI import the package to read params, which needs no torch).
    if name == "load_classifier":
        from stockclf.inference.checkpoint import load_classifier

        return load_classifier
    raise AttributeError(f"module 'stockclf' has no attribute {name!r}")
