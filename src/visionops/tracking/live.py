"""Per-epoch metrics sent while training runs: best effort, since the train stage logs the
whole history again (skipping what arrived) when training ends."""

from __future__ import annotations

import sys
import time

from visionops.errors import first_line


class LiveMetrics:
    """Logs to run_id until the first failure, then stays quiet (one warning)."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.run_id is None:
            return
        import mlflow
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        try:
            batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
            mlflow.MlflowClient().log_batch(self.run_id, metrics=batch)
        except Exception as exc:  # never let tracking stop training
            print(f"warning: live MLflow logging stopped ({first_line(exc)})", file=sys.stderr)
            self.run_id = None
