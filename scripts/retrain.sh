#!/usr/bin/env bash
# The retraining job, step by step: what .github/workflows/retrain.yml runs, and what
# scripts/ci-local.sh runs on a fresh local clone. Expects the project's venv on PATH.
#
# Environment (all optional):
#   SET_PARAMS          extra `dvc exp run` overrides, e.g. "-S train.epochs=12 -S train.lr=0.01"
#   REQUIRE_TENSORRT    "true" on GPU runners: the export stage must build a TensorRT engine
#   DVC_REMOTE_URL      DVC remote (s3://, gs://, azure://, ssh://...); credentials via the usual env vars
#   BASE_REV            what to diff metrics/params against (default: the previous commit)
#   GITHUB_STEP_SUMMARY where the Markdown summary goes (default: reports/retrain_summary.md)
set -euo pipefail
cd "$(dirname "$0")/.."
summary="${GITHUB_STEP_SUMMARY:-reports/retrain_summary.md}"
mkdir -p "$(dirname "$summary")"

step() { printf '\n==> %s\n' "$*"; }

step "DVC remote"
if [ -n "${DVC_REMOTE_URL:-}" ]; then
  dvc remote add --force --default ci "$DVC_REMOTE_URL"
fi
if [ -n "$(dvc remote list)" ]; then
  have_remote=true
  dvc pull --allow-missing || echo "dvc pull: nothing (or not everything) to pull; stages will rebuild"
else
  have_remote=false
  echo "no DVC remote configured: skipping dvc pull/push (set the DVC_REMOTE_URL secret to enable)"
fi

step "Reproduce the pipeline"
overrides=()
read -r -a overrides <<< "${SET_PARAMS:-}"
if [ "${REQUIRE_TENSORRT:-false}" = "true" ]; then
  overrides+=(-S export.require_tensorrt=true)
fi
if [ ${#overrides[@]} -gt 0 ]; then
  dvc exp run "${overrides[@]}"
else
  dvc repro
fi

step "Summary: metrics and params diff, registry decision"
base="${BASE_REV:-}"
if [ -z "$base" ] && git rev-parse -q --verify HEAD~1 >/dev/null; then
  base=HEAD~1
fi
{
  echo "## Retraining result"
  echo
  if [ -n "$base" ]; then
    echo "### Metrics (vs \`$base\`)"
    echo
    dvc metrics diff "$base" --md
    echo
    echo "### Params changed (vs \`$base\`)"
    echo
    dvc params diff "$base" --md
  else
    echo "### Metrics (no previous commit to diff against)"
    echo
    dvc metrics show --md
  fi
  echo
  echo "### Registry decision"
  echo
  python -m visionops registry-summary reports/registry.json
  echo
  echo "### dvc.lock"
  echo
  if git diff --quiet -- dvc.lock 2>/dev/null && git ls-files --error-unmatch dvc.lock >/dev/null 2>&1; then
    echo "unchanged"
  else
    echo "changed (not committed by CI; commit it to record this state):"
    echo
    echo '```'
    git diff --stat -- dvc.lock 2>/dev/null || true
    echo '```'
  fi
} >> "$summary"
echo "summary written to $summary"

step "DVC push"
if [ "$have_remote" = true ]; then
  dvc push
else
  echo "skipped: no DVC remote"
fi
