"""stockclf: tune and train a stock time-series image classifier, reproducibly with DVC."""

__version__ = "0.1.0"
