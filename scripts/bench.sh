#!/usr/bin/env bash
# Throughput and memory benchmarks against qemu-img (see bench/README.md).
#   scripts/bench.sh                 the full run (2 GiB synthetic disk)
#   scripts/bench.sh --size 256M     a quick run
#   scripts/bench.sh --only vmdk --keep --strict
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Emit even when another folder has type errors, but say so: the bench measures only what compiled.
# Under the lock test/global-setup.ts takes, so a concurrent test run never sees a half-built dist/.
if ! flock dist.lock npx tsc -p tsconfig.json --noEmitOnError false >/dev/null; then
  echo "bench: warning: tsc reported type errors (npx tsc -p . --noEmit); running what was emitted" >&2
fi
flock dist.lock node scripts/bundle.mjs
test -f dist/bench/run.js || { echo "bench: build failed (npx tsc -p tsconfig.json)" >&2; exit 1; }
exec node dist/bench/run.js "$@"
