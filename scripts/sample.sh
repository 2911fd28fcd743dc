#!/usr/bin/env bash
# The main job on a built-in sample disk (README). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/sample-job.mjs "$@"
