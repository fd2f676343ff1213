#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks lint and types, runs every test.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
bootstrap
cd "$ROOT"
"$NODE" node_modules/@biomejs/biome/bin/biome check . >/dev/null || { "$NODE" node_modules/@biomejs/biome/bin/biome check . 2>&1 | tail -30; die "lint failed (npm run lint fixes formatting)"; }
"$NODE" node_modules/typescript/bin/tsc -p tsconfig.json --noEmit || die "type check failed"
files=("$@")
[ ${#files[@]} -eq 0 ] && mapfile -t files < <(find test -name '*.test.ts' | sort)
exec "$NODE" --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
