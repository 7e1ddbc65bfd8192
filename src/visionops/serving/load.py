"""The registered model in Python, checked: `load_model("models:/NAME@champion")` downloads the
version, checks every file against the manifest sealed when it was registered (as `visionops
serve` and `predict` do), and only then lets MLflow load that local copy, whose Python code it
runs. `mlflow.pyfunc.load_model("models:/...")` would run whatever the store holds now."""

from __future__ import annotations

from pathlib import Path


def load_model(model_uri: str):
    """The MLflow pyfunc of a registered version, loaded from its checked local copy (kept in a
    temporary folder until the process ends)."""
    import atexit
    import shutil
    import tempfile

    import mlflow

    from visionops.tracking.version_files import fetch_announced

    folder = Path(tempfile.mkdtemp(prefix="visionops-model-"))
    atexit.register(shutil.rmtree, folder, True)
    fetched = fetch_announced(model_uri, folder, "load_model", onnx_only_ok=False)
    return mlflow.pyfunc.load_model(str(fetched.local))
