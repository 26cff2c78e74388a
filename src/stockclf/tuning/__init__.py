"""The Optuna study behind the tune stage: identity, storage, objective and outputs."""
