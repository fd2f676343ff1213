#!/usr/bin/env bash
# The main job on an embedded default: a sandbox Galera cluster and a local repository.
# Installs what is missing, then: sandbox up, load, status, keys, init, full backup, writes,
# incremental backup, list, verify, restore-test, status, dashboard; last, an offsite copy to an
# append-only SFTP server it starts (OpenSSH sshd on loopback), verified there. Leaves the sandbox
# running for you to explore.
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
if [ -f "$DIR/offsite/sshd.pid" ]; then kill "$(cat "$DIR/offsite/sshd.pid")" 2>/dev/null || true; fi
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

# --- offsite: a second repository on an SFTP server (OpenSSH sshd on loopback), append-only -------
OFF="$DIR/offsite"
step "offsite: start an SFTP server (OpenSSH sshd on loopback) whose account cannot delete or overwrite"
rm -rf "$OFF" && mkdir -m 0700 -p "$OFF/repo"
mkdir -p /run/sshd 2>/dev/null || true # sshd's privilege separation directory (as root)
ssh-keygen -q -t ed25519 -N '' -C strongbox-demo-host -f "$OFF/host_key"
# The backup host's key for the offsite account: made by (and readable only by) the backup account.
OFF_KEY="$BACKUP_HOME/keys/offsite_ed25519"
rm -f "$OFF_KEY" "$OFF_KEY.pub"
"${AS_BACKUP[@]}" ssh-keygen -q -t ed25519 -N '' -C strongbox-demo-offsite -f "$OFF_KEY"
cp "$OFF_KEY.pub" "$OFF/authorized_keys"
OFF_PORT="$("$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
cat > "$OFF/sshd_config" <<CONF
Port $OFF_PORT
ListenAddress 127.0.0.1
HostKey $OFF/host_key
PidFile $OFF/sshd.pid
AuthorizedKeysFile $OFF/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowUsers $(id -un)
LogLevel ERROR
Subsystem sftp internal-sftp -P remove,rmdir,posix-rename,setstat,fsetstat,lsetstat,hardlink,symlink,copy-data
CONF
/usr/sbin/sshd -f "$OFF/sshd_config" -E "$OFF/sshd.log"
for _ in $(seq 1 50); do [ -s "$OFF/sshd.pid" ] && break; sleep 0.1; done
"${AS_BACKUP[@]}" "$NODE" --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { parse, stringify } from "yaml";
  const [cfg, path, port, user, key, hostKey] = process.argv.slice(1);
  const c = parse(readFileSync(cfg, "utf8"));
  c.repositories = c.repositories.filter((r) => r.name !== "offsite");
  c.repositories.push({ name: "offsite", appendOnly: true, storage: { type: "sftp", host: "127.0.0.1",
    port: Number(port), user, path, privateKey: key, hostKey } });
  c.backup.copyTo = ["offsite"];
  writeFileSync(cfg, stringify(c), { mode: 0o600 });
' "$CFG" "$OFF/repo" "$OFF_PORT" "$(id -un)" "$OFF_KEY" "$(cut -d' ' -f1,2 "$OFF/host_key.pub")"
echo "sftp://$(id -un)@127.0.0.1:$OFF_PORT$OFF/repo (host key pinned; deletes and overwrites refused by the server)"

step "offsite: initialise it and copy every backup there (hashes checked on arrival)"
bh --config "$CFG" init --repo offsite
bh --config "$CFG" copy --to offsite

step "offsite: verify the copy there: signatures, chains, hashes, and every stream decrypted"
bh --config "$CFG" verify --repo offsite --read-data

step "status: the offsite copy is now part of the health report"
bh --config "$CFG" status || true

AS=""; [ "$MODE" = hosts ] && AS="runuser -u $BACKUP_USER -- "
printf '\nDone (%s). The sandbox and the dashboard are still running:\n  %s%s --config %s <command>\n  kill $(cat %s/serve.pid) $(cat %s/sshd.pid); %s sandbox down --dir %s [--purge]\n' \
  "$MODE" "$AS" "$ROOT/bin/strongbox" "$CFG" "$DIR" "$OFF" "$ROOT/bin/strongbox" "$DIR"
