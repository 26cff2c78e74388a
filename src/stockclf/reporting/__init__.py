"""Human-readable views of a study: Optuna plots and the `stockclf study show` report."""
