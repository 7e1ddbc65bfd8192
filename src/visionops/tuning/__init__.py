"""`visionops tune`: an Optuna study over train.* and model.* params on the prepared data."""
