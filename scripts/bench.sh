#!/usr/bin/env bash
# The benchmark (docs/benchmarks.md): strongbox next to the shell pipeline, restic and borg on a sandbox.
#   npm run bench [-- --size 1GB | --sizes 0.5GB,4GB] [-- --reps 3] [-- --profile] [-- --keep]
#   npm run bench:binlog [-- --rate 200 --seconds 120]
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
# GNU time measures each command's process tree (user + sys of everything it waited for).
bootstrap "/usr/bin/time:time"
cd "$ROOT"
# npm run bench:binlog: continuous binlog archiving under a write load (bench/binlog-stream.ts).
if [ "${1:-}" = "--binlog-stream" ]; then shift; exec "$NODE" bench/binlog-stream.ts "$@"; fi
exec "$NODE" bench/run.ts "$@"
