"""evaluate: test-set metrics of models/model.pt — accuracy, macro precision/recall/F1,
calibration (ECE): reports/eval.json, and reports/metrics/evaluate.json (the metric);
per-class table and confusion matrix (CSV for `dvc plots`, PNG for people).
Logs them to the model's MLflow run. Reads params: evaluate.
"""

from pathlib import Path

from visionops.stage import run_stage

PREPARED = Path("data/prepared")
MODEL = Path("models/model.pt")
RUN = Path("models/run.json")
REPORT = Path("reports/eval.json")
METRICS = Path("reports/metrics/evaluate.json")
PER_CLASS = Path("reports/per_class.csv")
CONFUSION_CSV = Path("reports/confusion.csv")
CONFUSION_PNG = Path("reports/confusion_matrix.png")


def main(args) -> None:
    import pandas as pd

    from visionops.config import dump, flatten, load_params
    from visionops.data.loader import ImageBatches
    from visionops.data.prepared import open_prepared
    from visionops.device import resolve_device
    from visionops.evaluation.metrics import classification_metrics, softmax
    from visionops.evaluation.plots import plot_confusion_matrix
    from visionops.inference import predict_logits
    from visionops.io import read_json, write_csv, write_json, write_metrics
    from visionops.models.serialize import load_model
    from visionops.tracking.track import track

    params = load_params(args.params, "evaluate", "tracking")
    cfg = params["evaluate"]
    run = read_json(RUN)  # before any work: a missing or damaged run.json fails fast
    data = open_prepared(PREPARED)
    setup = resolve_device("auto", amp=False, channels_last=False)
    model, _ = load_model(MODEL, setup.device)
    test = ImageBatches(
        data.test.x, data.test.y, data.meta["mean"], data.meta["std"], setup.device
    )  # one pass: streamed
    probs = softmax(predict_logits(model, test, cfg.batch_size, setup).cpu().numpy())
    y_true = data.test.y
    result = classification_metrics(y_true, probs, data.classes, cfg.calibration_bins)

    headline = {
        k: result[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "ece", "n_test")
    }
    write_json(REPORT, headline)
    write_metrics(
        METRICS,
        {k: headline[k] for k in ("accuracy", "f1_macro", "ece")}
        | {"precision": headline["precision_macro"], "recall": headline["recall_macro"]},
    )
    write_csv(PER_CLASS, pd.DataFrame(result["per_class"]))
    names = pd.Series(data.classes)
    predicted = pd.DataFrame({"actual": names[y_true].values, "predicted": names[probs.argmax(1)].values})
    write_csv(CONFUSION_CSV, predicted)
    plot_confusion_matrix(result["confusion_matrix"], data.classes, CONFUSION_PNG)

    values = {
        "params": flatten(dump({"evaluate": cfg})),
        "metrics": {f"test_{k}": float(v) for k, v in headline.items() if k != "n_test"},
        "artifact_dirs": {"per_class": "evaluation", "confusion": "evaluation", "report": "evaluation"},
    }
    files = {"per_class": PER_CLASS, "confusion": CONFUSION_PNG, "report": REPORT}
    track("evaluate", run, files, values, params["tracking"])
    print(
        f"evaluate: accuracy {headline['accuracy']:.4f}, f1_macro {headline['f1_macro']:.4f}, "
        f"ECE {headline['ece']:.4f} on {headline['n_test']} test images"
    )


if __name__ == "__main__":
    run_stage("evaluate", __doc__, main)
