#!/usr/bin/env bash
# The scheduled monitoring check, step by step: what .github/workflows/monitor.yml runs, and
# what anyone can run by hand. Expects the project's venv on PATH.
#
# Environment:
#   MONITOR_IMAGES  the served model's recent images: a folder, or an s3:// prefix (monitor reads
#                   the newest with boto3; AWS_ENDPOINT_URL for a non-AWS store such as SeaweedFS)
#   MONITOR_MODEL   the model to watch (default: models:/visionops-classifier@champion)
#   GITHUB_OUTPUT   gets `retrain=true|false` (the workflow's next job reads it)
#   GITHUB_STEP_SUMMARY  where the Markdown summary goes (default: reports/monitor_summary.md)
# Exit status: 0 whether or not retraining is due (that is the output); 5 after the summary when
# the images are out of domain (the job fails: a person must look); other non-zero on an error.
set -euo pipefail
cd "$(dirname "$0")/.."
images="${MONITOR_IMAGES:?set MONITOR_IMAGES to the folder or s3:// prefix of the recent images the model served}"
model="${MONITOR_MODEL:-models:/visionops-classifier@champion}"
summary="${GITHUB_STEP_SUMMARY:-reports/monitor_summary.md}"
mkdir -p reports "$(dirname "$summary")"

set +e
visionops monitor "$images" --model "$model" --out reports/monitor.json --no-progress
status=$?
set -e
case "$status" in
  0 | 5) retrain=false ;;  # ok | out_of_domain (retraining on the old data would not help)
  3 | 4) retrain=true ;;  # drift | degraded
  *) exit "$status" ;;
esac
echo "retrain=$retrain" >> "${GITHUB_OUTPUT:-/dev/null}"
python - "$summary" "$retrain" <<'PY'
import json, sys
report = json.load(open("reports/monitor.json"))
acc, domain = report["accuracy"]["estimated"], report["out_of_domain"]
estimate = (
    f"accuracy estimated {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] on {acc['of']}"
    if acc["estimable"] else f"accuracy not estimable ({acc['reason']})"
)
share = f"; out of domain {domain['value']:.1%}" if domain["measured"] else ""
lines = [
    f"## Monitoring: **{report['verdict']}** on {report['images']} image(s)",
    f"Model `{report['model']['uri']}`; {estimate} (reference {report['reference']['accuracy']:.3f})"
    f"{share}; retraining {'started' if sys.argv[2] == 'true' else 'not needed'}.",
    "",
    *[f"- {reason}" for reason in report["reasons"]],
]
if report["verdict"] == "out_of_domain":
    lines.insert(1, "> **A person must look**: the model is being shown images unlike any it learned.")
with open(sys.argv[1], "a") as out:
    out.write("\n".join(lines) + "\n")
PY
if [ "$status" = 5 ]; then
  echo "monitor: out_of_domain: the job fails so that someone looks (see $summary)" >&2
  exit 5
fi
