"""MLflow: runs and what each stage logs (runs.py, stage_logs.py, track.py), the model
registry (registry.py). A leaf: stages hand it plain values and files, it imports no stage package."""
