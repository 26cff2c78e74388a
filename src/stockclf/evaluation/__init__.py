"""Scoring on the untouched test split, for the model and for simple baselines."""
