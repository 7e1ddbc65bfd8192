"""evaluate: test-set metrics of models/model.pt — accuracy, macro precision/recall/F1,
calibration (ECE): reports/evaluate.json, and reports/metrics/evaluate.json (the metric);
per-class table and confusion matrix (CSV for `dvc plots`, PNG for people); likely label
errors among the test images (cleanlab on the model's probabilities): reports/label_issues.csv
and a thumbnail grid, reports/label_issues.png; with evaluate.train_label_issues, among the
train originals too (out-of-fold probabilities of a cheap model): label_issues_train.csv.
Logs them to the model's MLflow run. Reads params: evaluate.
"""

from visionops.cli.stage import run_stage
from visionops.paths import (
    CONFUSION_PNG,
    EVALUATE_METRICS,
    EVALUATE_REPORT,
    LABEL_ISSUES,
    LABEL_ISSUES_PNG,
    LABEL_ISSUES_TRAIN,
    MODEL,
    PER_CLASS,
    PREDICTIONS,
    PREPARED,
    RUN,
)


def main(args) -> None:
    import pandas as pd

    from visionops.config import dump, flatten, load_params
    from visionops.data.prepared import open_prepared
    from visionops.device import resolve_device
    from visionops.evaluation.metrics import classification_metrics
    from visionops.evaluation.plots import plot_confusion_matrix, plot_label_issues
    from visionops.export.classifier import EagerClassifier
    from visionops.io import file_sha256, read_json, write_csv, write_json, write_metrics
    from visionops.models.serialize import load_model
    from visionops.models.tta import with_tta
    from visionops.tracking.record import StageLog
    from visionops.tracking.track import track

    params = load_params(args.params, "evaluate", "tracking")
    cfg = params["evaluate"]
    run = read_json(RUN)  # before any work: a missing or damaged run.json fails fast
    data = open_prepared(PREPARED)
    setup = resolve_device("auto", amp=False, channels_last=False)
    model, payload = load_model(MODEL, setup.device)
    model = with_tta(model, payload["spec"])  # scored as export will deploy it (model.tta)
    # the one way visionops predicts, here with the PyTorch model: memory flat in the split size
    probs = EagerClassifier(model, data.meta.model_meta(), cfg.batch_size).probabilities(data.test.x)
    y_true = data.test.y
    result = classification_metrics(y_true, probs, data.classes, cfg.calibration_bins)

    headline = {
        k: result[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "ece", "n_test")
    }
    issues, train_issues, judge = _label_issues(data, probs, cfg.train_label_issues)
    counts = {"label_issues": len(issues)} | (
        {"train_label_issues": len(train_issues)} if cfg.train_label_issues else {}
    )
    write_metrics(
        EVALUATE_METRICS,
        {k: headline[k] for k in ("accuracy", "f1_macro", "ece")} | counts,  # precision/recall: MLflow
    )
    write_csv(PER_CLASS, pd.DataFrame(result["per_class"]))
    names = pd.Series(data.classes)
    predicted = pd.DataFrame({"actual": names[y_true].values, "predicted": names[probs.argmax(1)].values})
    write_csv(PREDICTIONS, predicted)
    custody = {"model_sha256": file_sha256(MODEL), "predictions_sha256": file_sha256(PREDICTIONS)}
    write_json(EVALUATE_REPORT, headline | counts | judge | custody)  # which model, which predictions
    plot_confusion_matrix(result["confusion_matrix"], data.classes, CONFUSION_PNG)
    write_csv(LABEL_ISSUES, issues)
    write_csv(LABEL_ISSUES_TRAIN, train_issues)
    plot_label_issues(data.test.x, issues, LABEL_ISSUES_PNG)

    values = StageLog(
        params=flatten(dump({"evaluate": cfg})),
        metrics={f"test_{k}": float(v) for k, v in headline.items() if k != "n_test"}
        | {f"test_{k}": v for k, v in counts.items()}
        | judge,
        artifact_dirs=dict.fromkeys(
            ("per_class", "confusion", "report", "issues", "issues_grid", "train_issues"), "evaluation"
        ),
    )
    files = {
        "per_class": PER_CLASS,
        "confusion": CONFUSION_PNG,
        "report": EVALUATE_REPORT,
        "issues": LABEL_ISSUES,
        "issues_grid": LABEL_ISSUES_PNG,
        "train_issues": LABEL_ISSUES_TRAIN,
    }
    track("evaluate", run, files, values, params["tracking"])
    print(
        f"evaluate: accuracy {headline['accuracy']:.4f}, f1_macro {headline['f1_macro']:.4f}, "
        f"ECE {headline['ece']:.4f} on {headline['n_test']} test images; {len(issues)} likely label "
        f"error(s) -> {LABEL_ISSUES}"
    )
    if judge:  # the train suspects are only as good as the cheap model that found them
        print(
            f"evaluate: {len(train_issues)} likely label error(s) in train -> {LABEL_ISSUES_TRAIN}; "
            f"the cheap model that judged them is {judge['train_judge_accuracy']:.0%} right out of fold "
            f"(always the most frequent class: {judge['train_majority_share']:.0%}): hints, not verdicts"
        )


def _label_issues(data, probs, train_too: bool):
    """Likely label errors with their file paths: in test from the model's probabilities; in
    the train originals (when asked) from a cheap model's out-of-fold probabilities, since the
    model has learnt those labels, with how often that cheap model is right (and the
    majority class's share, for scale). The train table is empty when not asked for."""
    import numpy as np

    from visionops.evaluation.label_issues import (
        find_label_issues,
        out_of_fold_probabilities,
        thumbnail_features,
    )

    files = data.files()
    paths = {split: rows.set_index("index")["path"] for split, rows in files.groupby("split")}
    test = find_label_issues(data.test.y, probs, data.classes)
    test = test.assign(path=paths["test"].loc[test["row"].to_numpy(int)].to_numpy())
    if not train_too:
        return test, test.iloc[:0], {}
    rows = data.train.originals
    labels = data.train.y[rows].astype(int)
    oof = out_of_fold_probabilities(thumbnail_features(data.train.x, rows), labels)
    train = find_label_issues(labels, oof, data.classes)
    original = data.train.source[rows] if data.train.source is not None else rows
    judge = {
        "train_judge_accuracy": float((oof.argmax(1) == labels).mean()),
        "train_majority_share": float(np.bincount(labels).max() / len(labels)),
    }
    train = train.assign(path=paths["train"].loc[original[train["row"].to_numpy(int)]].to_numpy())
    return test, train, judge


if __name__ == "__main__":
    run_stage("evaluate", __doc__, main)
