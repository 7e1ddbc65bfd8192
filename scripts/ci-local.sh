#!/usr/bin/env bash
# Run the retrain workflow's steps locally, on a fresh clone of this repository, so a
# change to the job can be tried without pushing. Usage:
#   scripts/ci-local.sh                      # default params
#   SET_PARAMS="-S train.epochs=2" scripts/ci-local.sh
# Reuses this checkout's .venv (VENV=... to choose another); prints the job summary.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$here/.venv}"
[ -x "$venv/bin/dvc" ] || { echo "no venv at $venv: run 'make install' first" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/visionops-ci.XXXXXX")"
git clone --quiet "$here" "$work/repo"
export PATH="$venv/bin:$PATH"
export GITHUB_STEP_SUMMARY="$work/summary.md"
export DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1 MLFLOW_DISABLE_TELEMETRY=true
unset MLFLOW_TRACKING_URI
(cd "$work/repo" && scripts/retrain.sh)
echo
echo "---- job summary ($GITHUB_STEP_SUMMARY) ----"
cat "$GITHUB_STEP_SUMMARY"
