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

step "Summary: the registry decision, then the metrics and params diff"
base="${BASE_REV:-}"
if [ -z "$base" ] && git rev-parse -q --verify HEAD~1 >/dev/null; then
  base=HEAD~1
fi
# The baseline is the curated metrics committed at $base (reports/metrics/, with dvc.lock).
if [ -n "$base" ] && [ -n "$(git ls-tree --name-only "$base" reports/metrics/ 2>/dev/null)" ]; then
  have_baseline=true
else
  have_baseline=false
fi
{
  echo "## Retraining result"
  echo "### Challenger vs champion"
  python -m visionops registry-summary reports/register.json
  if [ "$have_baseline" = true ]; then
    echo "### Metrics (vs \`$base\`)"
    dvc metrics diff "$base" --md | sed '/^$/d'
    changed="$(dvc params diff "$base" --md)"
    if [ "$(printf '%s\n' "$changed" | grep -c '^|')" -gt 2 ]; then  # more than the header
      echo "### Params changed (vs \`$base\`)"
      echo "$changed"
    fi
  else
    echo "### Metrics"
    echo "No baseline: \`${base:-no previous commit}\` has no committed reports/metrics/ (commit them with dvc.lock after a run, as the opt-in pull request does)."
    echo
    dvc metrics show --md
  fi
  if git diff --quiet -- dvc.lock 2>/dev/null && git ls-files --error-unmatch dvc.lock >/dev/null 2>&1; then
    echo "dvc.lock: unchanged"
  else
    echo "dvc.lock: changed (not committed by CI; commit it with reports/metrics/ to make this run the baseline)"
  fi
} >> "$summary"
echo "summary written to $summary"

step "DVC push"
if [ "$have_remote" = true ]; then
  if ! dvc push; then
    echo "dvc push failed: the remote '$(dvc remote default)' did not take the outputs (see DVC's error above)." >&2
    echo "  nothing is lost: the outputs are in this clone's DVC cache (.dvc/cache); run \`dvc push\` again once the remote answers" >&2
    exit 1
  fi
else
  echo "skipped: no DVC remote"
fi
