"""visionops: an image-classification MLOps pipeline (DVC + MLflow + GX + ONNX).

Importing the package sets process hygiene before any heavy library loads:
albumentations phones home on import, DVC and MLflow send telemetry, GX sends analytics.
"""

import os

for _name, _value in {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "False",
}.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
