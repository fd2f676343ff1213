#!/usr/bin/env bash
# The benchmark (docs/benchmarks.md): strongbox next to the shell pipeline, restic and borg on a sandbox.
#   npm run bench [-- --size 1GB | --sizes 0.5GB,4GB] [-- --reps 3] [-- --profile] [-- --keep]
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
# GNU time measures each command's process tree (user + sys of everything it waited for).
bootstrap "/usr/bin/time:time"
cd "$ROOT"
exec "$NODE" bench/run.ts "$@"
