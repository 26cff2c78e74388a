"""Human-readable views: Optuna plots, training curves, the `stockclf study show` report and
the markdown tables of the model card and the benchmark reports."""
