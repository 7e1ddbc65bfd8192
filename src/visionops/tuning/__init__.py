"""`visionops tune`: an Optuna study over train.* and model.* params on the prepared data."""

STORAGE_ENV = "VISIONOPS_TUNE_STORAGE"  # the team's study database (scripts/team_stack.py prints it)
