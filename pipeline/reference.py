"""reference: what monitoring compares the served model against: models/model.onnx (the model
that is registered and served) on the held-out test images: its softmax outputs and embedding
(of up to 1,000 evenly spaced images), the labels,
each image's brightness/contrast/sharpness and original size (from validate's descriptions), and
the threshold for estimating accuracy without labels. Writes models/reference/, which register
ships inside the model version. Reads no params.
"""

from visionops.cli.stage import run_stage
from visionops.paths import ONNX, PREPARED, REFERENCE, VALIDATED


def main(args) -> None:
    import numpy as np

    from visionops.data.prepared import open_prepared, read_rows
    from visionops.export.classifier import OnnxClassifier
    from visionops.io import file_sha256
    from visionops.monitoring.reference import build_reference, save_reference, test_file_sizes
    from visionops.validation import descriptions

    data = open_prepared(PREPARED)
    model = OnnxClassifier(ONNX)
    sizes = test_file_sizes(data.file_sha256("test"), descriptions.load(VALIDATED).rows)
    rows = np.arange(len(data.test))
    batches = (
        (read_rows(data.test.x, rows[i : i + 256]), sizes[i : i + 256]) for i in range(0, len(rows), 256)
    )
    reference = build_reference(model.outputs, batches, data.test.y, data.classes, file_sha256(ONNX))
    save_reference(reference, REFERENCE)
    print(
        f"reference: {len(reference.labels)} test images, accuracy {reference.accuracy:.4f}, "
        f"ATC threshold {reference.atc_threshold:.4f} -> {REFERENCE}"
    )


if __name__ == "__main__":
    run_stage("reference", __doc__, main)
