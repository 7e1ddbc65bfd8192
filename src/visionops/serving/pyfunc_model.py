"""The registered MLflow model (pyfunc, "models from code"): a DataFrame with a column `image`
of encoded image files (any size and mode; base64 in a REST request) in; `label`, `index`
and `probability` per row out. Decoded and resized by the pipeline's own code, then the
exported ONNX graph (artifact `onnx`), which normalises inside. With VISIONOPS_REQUEST_LOG set,
every image's probabilities, embedding and statistics are appended to the request log that `visionops
monitor --requests` reads (monitoring/request_log.py)."""

from __future__ import annotations

import io

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class ImageClassifier(PythonModel):
    """Encoded image bytes -> the model's label, class index and probability. A request that
    holds no image, or one that is not a readable image, is the client's error: a short 400
    naming the row, with no traceback or server path (MLflow's scoring server attaches its
    stack trace to any other exception)."""

    def load_context(self, context) -> None:
        from visionops.export.classifier import OnnxClassifier
        from visionops.io import file_sha256
        from visionops.monitoring.request_log import from_environment

        self.model = OnnxClassifier(context.artifacts["onnx"])
        self.requests = from_environment(file_sha256(context.artifacts["onnx"]))

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        if "image" not in getattr(model_input, "columns", ()) or len(model_input) == 0:
            raise _client_error("the request holds no image: send one base64 image per row of column 'image'")
        decoded = [self._decode(row, value) for row, value in enumerate(model_input["image"])]
        images = np.stack([pixels for pixels, _ in decoded])
        if self.requests is None:
            probs = self.model.probabilities(images)
        else:
            from visionops.monitoring.stats import image_stats

            probs, embeddings = self.model.outputs(images)
            sizes = np.asarray([size for _, size in decoded], dtype=np.float64)
            self.requests.append(probs, image_stats(images, sizes), embeddings)
        best = probs.argmax(1)
        return pd.DataFrame(
            {
                "label": [self.model.classes[i] for i in best],
                "index": best.astype(np.int64),
                "probability": probs[np.arange(len(best)), best],
            }
        )

    def _decode(self, row: int, value):
        """(uint8 HWC pixels at the model's size, the file's (width, height)), or a 400."""
        from visionops.data.decode import load_resized_sized
        from visionops.errors import VisionOpsError

        try:
            return load_resized_sized(
                io.BytesIO(_bytes(value)), self.model.meta["channels"], self.model.meta["image_size"]
            )
        except VisionOpsError as exc:  # e.g. over the pixel limit
            reason = exc.cause.split(": ", 1)[-1]  # without the file object's name
        except Exception as exc:
            reason = f"not a readable image file ({type(exc).__name__})"
        raise _client_error(f"image in row {row}: {reason[:200]}")


def _client_error(message: str) -> MlflowException:
    """An error MLflow's scoring server answers with 400 and this message alone."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _bytes(value) -> bytes:
    """The encoded image. MLflow hands `dataframe_split`/`dataframe_records` binary columns over
    already decoded from base64, but the `inputs` form as the base64 text's bytes; a str means
    the schema was bypassed. Real image bytes are never valid base64 text (their headers are
    binary), so base64 text is decoded and anything else is taken as the file itself."""
    import base64
    import binascii

    raw = value.encode() if isinstance(value, str) else bytes(value)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return raw


mlflow.models.set_model(ImageClassifier())
