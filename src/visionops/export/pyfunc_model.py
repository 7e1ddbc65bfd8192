"""The registered MLflow model (pyfunc, "models from code"): a DataFrame with a column `image`
of encoded image files (any size and mode; base64 in a REST request) in; `label`, `index`
and `probability` per row out. Decoded and resized by the pipeline's own code, then the
exported ONNX graph (artifact `onnx`), which normalises inside."""

from __future__ import annotations

import io

import mlflow
from mlflow.pyfunc import PythonModel


class ImageClassifier(PythonModel):
    """Encoded image bytes -> the model's label, class index and probability."""

    def load_context(self, context) -> None:
        from visionops.export.classifier import OnnxClassifier

        self.model = OnnxClassifier(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        from visionops.data.decode import load_resized

        size, channels = self.model.meta["image_size"], self.model.meta["channels"]
        images = np.stack([load_resized(io.BytesIO(_bytes(v)), channels, size) for v in model_input["image"]])
        probs = self.model.probabilities(images)
        best = probs.argmax(1)
        return pd.DataFrame(
            {
                "label": [self.model.classes[i] for i in best],
                "index": best.astype(np.int64),
                "probability": probs[np.arange(len(best)), best],
            }
        )


def _bytes(value) -> bytes:
    """MLflow hands binary columns over as bytes; a base64 str if the schema was bypassed."""
    if isinstance(value, str):
        import base64

        return base64.b64decode(value)
    return bytes(value)


mlflow.models.set_model(ImageClassifier())
