#!/usr/bin/env bash
# The project's test command (README, .ci/run). Installs what it needs, type-checks,
# runs the suite and ends with one plain "N passed, N failed" line.
#   scripts/test.sh           default suite (fast unit + real-program integration tests)
#   scripts/test.sh --slow    slow suite: boot under qemu TCG, real Ganeti cluster
set -euo pipefail
cd "$(dirname "$0")/.."
config=vitest.config.ts
setup_args=()
if [ "${1:-}" = "--slow" ]; then config=vitest.slow.config.ts; setup_args=(--slow); shift; fi
bash scripts/setup.sh "${setup_args[@]}"
# setup.sh has type-checked the sources (tsc fails on any error); the tests are type-checked too, and formatting.
npx tsc -p tsconfig.test.json || { echo "test: type errors (npx tsc -p tsconfig.test.json)" >&2; exit 1; }
npx prettier --check . >/dev/null || { echo "test: formatting differs: run npm run format" >&2; exit 1; }
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --config "$config" --reporter=default --reporter=json --outputFile.json="$report" "$@" </dev/null || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
  if (skipped) { console.error("a skipped test is not a passing one: fix or remove it"); process.exit(1); }
  if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
' "$report" || status=1
exit $status
