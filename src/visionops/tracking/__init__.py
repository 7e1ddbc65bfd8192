"""MLflow: run resolution and logging (runs.py), registry and promotion gate (registry.py)."""
