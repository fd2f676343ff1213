#!/usr/bin/env bash
# The main job on an embedded default: a sandbox Galera cluster and a local repository.
# Installs what is missing, then: sandbox up, load, status, keys, init, full backup, writes,
# incremental backup, list. Leaves the sandbox running for you to explore.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
bootstrap
cd "$ROOT"

DIR="${STRONGBOX_DEMO_DIR:-$ROOT/.sandbox}"
SIZE="${STRONGBOX_DEMO_SIZE:-200MB}"
sb() { "$ROOT/bin/strongbox" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -f "$DIR/serve.pid" ]; then kill "$(cat "$DIR/serve.pid")" 2>/dev/null || true; fi
if [ -f "$DIR/sandbox.json" ]; then
  step "removing the previous demo sandbox in $DIR"
  sb sandbox down --dir "$DIR" --purge
fi

step "start a 3-node MariaDB Galera cluster on loopback"
sb sandbox up --dir "$DIR"
CFG="$DIR/strongbox.yaml"

step "load a deterministic dataset ($SIZE)"
sb sandbox load --dir "$DIR" --size "$SIZE" --seed 1

step "cluster status"
sb --config "$CFG" sandbox status

step "generate an escrow key (kept offline in real life) and add it as a second recipient"
sb key generate --out "$DIR/keys/escrow.txt"
grep -o 'age1[0-9a-z]*' "$DIR/keys/escrow.txt" | head -1 >> "$DIR/keys/recipients.txt"

step "initialise the repository (signing key + recipients)"
sb --config "$CFG" init

step "full backup (Galera-aware: Synced donor, desync, stream → zstd → age → parts)"
sb --config "$CFG" backup --full

step "some writes"
sb sandbox write --dir "$DIR" --seconds 5

step "incremental backup"
sb --config "$CFG" backup --incremental

step "what is in the repository"
sb --config "$CFG" list

step "verify: signatures, chains, every part's SHA-256 (no key needed)"
sb --config "$CFG" verify

step "verify --read-data: decrypt, decompress and parse every stream"
sb --config "$CFG" verify --read-data

step "restore-test: restore the chain into scratch space, start mariadbd, CHECK TABLE, compare the inventory"
sb --config "$CFG" restore-test

step "status: the health of every repository (Nagios exit codes)"
sb --config "$CFG" status || true

step "dashboard: backup timeline, duration and size charts, verify and restore-test record"
PORT="${STRONGBOX_DEMO_PORT:-8484}"
nohup "$ROOT/bin/strongbox" --config "$CFG" serve --port "$PORT" > "$DIR/serve.log" 2>&1 &
echo $! > "$DIR/serve.pid"
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.2
done
echo "dashboard: http://127.0.0.1:$PORT/   (metrics: http://127.0.0.1:$PORT/metrics)"

printf '\nDone. The sandbox and the dashboard are still running:\n  %s --config %s <command>\n  kill $(cat %s/serve.pid); %s sandbox down --dir %s [--purge]\n' \
  "$ROOT/bin/strongbox" "$CFG" "$DIR" "$ROOT/bin/strongbox" "$DIR"
