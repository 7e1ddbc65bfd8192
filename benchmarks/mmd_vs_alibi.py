"""visionops's MMD test against alibi-detect's `MMDDrift` on the same windows of the same
embeddings (issue 49): how often each rejects on clean traffic (false alarms) and on each mild
corruption, for windows of 500 images against the reference's embeddings.

visionops's test is counted alone at 0.05 (as `MMDDrift` is run: its PyTorch backend, its
default 100 permutations) and at the two thresholds it has had inside a check: its share of
alpha under the weighted Holm correction (0.025: half of 0.05) and its old Bonferroni share
(0.05 / 18). alibi-detect is not a dependency of visionops; install it
beside the project, in its own environment:

    python3 -m venv /tmp/alibi && /tmp/alibi/bin/pip install 'alibi-detect[torch]' torch==2.14.1
    python benchmarks/drift_power.py ... --save-embeddings embeddings.npz
    PYTHONPATH=src /tmp/alibi/bin/python benchmarks/mmd_vs_alibi.py embeddings.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

WINDOW = 500
ALONE, SHARE, BONFERRONI = 0.05, 0.05 * 0.5, 0.05 / 18


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("embeddings", type=Path, help="drift_power.py --save-embeddings's .npz")
    parser.add_argument("--windows", type=int, default=20, help="windows per pool")
    args = parser.parse_args()

    from alibi_detect.cd import MMDDrift

    from visionops.monitoring.mmd import mmd_test

    saved = np.load(args.embeddings)
    reference = saved["reference"].astype(np.float32)
    detector = MMDDrift(reference, backend="pytorch", p_val=0.05)
    rng = np.random.default_rng(0)
    print(
        f"| window of {WINDOW} | visionops alone (p <= {ALONE}) | in a check (p <= {SHARE}) "
        f"| under Bonferroni (p <= {BONFERRONI:.4f}) | MMDDrift (alone, 0.05) "
        "| seconds per window: visionops / MMDDrift |"
    )
    print("|---|---|---|---|---|---|")
    for name in [key for key in saved.files if key != "reference"]:
        pool = saved[name].astype(np.float32)
        ours, theirs, seconds = [], [], [0.0, 0.0]
        for _ in range(args.windows):
            window = pool[rng.choice(len(pool), WINDOW, replace=False)]
            start = time.perf_counter()
            ours.append(mmd_test(reference, window, smallest=SHARE)[1])
            seconds[0] += time.perf_counter() - start
            start = time.perf_counter()
            theirs.append(bool(detector.predict(window)["data"]["is_drift"]))
            seconds[1] += time.perf_counter() - start
        ours = np.asarray(ours)
        print(
            f"| {name} | {np.mean(ours <= ALONE):.2f} | {np.mean(ours <= SHARE):.2f} "
            f"| {np.mean(ours <= BONFERRONI):.2f} | "
            f"{np.mean(theirs):.2f} | {seconds[0] / args.windows:.2f} / {seconds[1] / args.windows:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
