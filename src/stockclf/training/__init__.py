"""Model, optimisation and the Lightning training loop shared by tune and train_best."""
