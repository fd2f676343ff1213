#!/usr/bin/env bash
# The main job on an embedded default: a sandbox Galera cluster and a local repository.
# Installs what is missing, then: sandbox up, load, status, keys, init, full backup, writes,
# incremental backup, list. Leaves the sandbox running for you to explore.
# As root the nodes are separate hosts (sandbox up --hosts: an address, an OS account and an sshd
# with the agent each) and the backup host's commands (bh) run as its own unprivileged account;
# otherwise everything runs on one host as you. STRONGBOX_DEMO_MODE=one-host forces the latter.
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

MODE="${STRONGBOX_DEMO_MODE:-$([ "$(id -u)" -eq 0 ] && echo hosts || echo one-host)}"
if [ "$MODE" = hosts ]; then
  step "start a 3-node MariaDB Galera cluster, each node a host: 127.0.0.11-13, own OS account, own sshd"
  sb sandbox up --dir "$DIR" --hosts
  BACKUP_HOME="$DIR/backup"
  BACKUP_USER="$(stat -c %U "$BACKUP_HOME")"
  echo "mode: separate hosts; the backup host's commands run as $BACKUP_USER, which can read no data directory"
  # The backup host: its own account, its own home (config, keys, repository).
  AS_BACKUP=(setpriv --reuid="$BACKUP_USER" --regid="$BACKUP_USER" --init-groups env HOME="$BACKUP_HOME")
else
  step "start a 3-node MariaDB Galera cluster on loopback"
  sb sandbox up --dir "$DIR"
  BACKUP_HOME="$DIR"
  echo "mode: one host (run as root for separate hosts: an address, OS account and agent per node)"
  AS_BACKUP=()
fi
bh() { "${AS_BACKUP[@]}" "$ROOT/bin/strongbox" "$@"; }
CFG="$BACKUP_HOME/strongbox.yaml"

step "load a deterministic dataset ($SIZE)"
sb sandbox load --dir "$DIR" --size "$SIZE" --seed 1

step "cluster status"
sb --config "$CFG" sandbox status

step "generate an escrow key (kept offline in real life) and add it as a second recipient"
bh key generate --out "$BACKUP_HOME/keys/escrow.txt"
grep -o 'age1[0-9a-z]*' "$BACKUP_HOME/keys/escrow.txt" | head -1 >> "$BACKUP_HOME/keys/recipients.txt"

step "initialise the repository (signing key + recipients)"
bh --config "$CFG" init

step "full backup (Galera-aware: Synced donor, desync, stream → zstd → age → parts)"
bh --config "$CFG" backup --full

step "some writes"
sb sandbox write --dir "$DIR" --seconds 5

step "incremental backup"
bh --config "$CFG" backup --incremental

step "what is in the repository"
bh --config "$CFG" list

step "verify: signatures, chains, every part's SHA-256 (no key needed)"
bh --config "$CFG" verify

step "verify --read-data: decrypt, decompress and parse every stream"
bh --config "$CFG" verify --read-data

step "restore-test: restore the chain into scratch space, start mariadbd, CHECK TABLE, compare the inventory"
bh --config "$CFG" restore-test

step "status: the health of every repository (Nagios exit codes)"
bh --config "$CFG" status || true

step "dashboard: backup timeline, duration and size charts, verify and restore-test record"
PORT="${STRONGBOX_DEMO_PORT:-8484}"
nohup "${AS_BACKUP[@]}" "$ROOT/bin/strongbox" --config "$CFG" serve --port "$PORT" > "$DIR/serve.log" 2>&1 &
echo $! > "$DIR/serve.pid"
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.2
done
echo "dashboard: http://127.0.0.1:$PORT/   (metrics: http://127.0.0.1:$PORT/metrics)"

AS=""; [ "$MODE" = hosts ] && AS="runuser -u $BACKUP_USER -- "
printf '\nDone (%s). The sandbox and the dashboard are still running:\n  %s%s --config %s <command>\n  kill $(cat %s/serve.pid); %s sandbox down --dir %s [--purge]\n' \
  "$MODE" "$AS" "$ROOT/bin/strongbox" "$CFG" "$DIR" "$ROOT/bin/strongbox" "$DIR"
