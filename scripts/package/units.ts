// The systemd units of the Debian package: the daemon as a service, or, instead of it, a timer per
// job calling the single command. Every service runs as the `strongbox` account with the same
// hardening; it may write only the state directory and the default local repository.
const HARDENING = [
  "User=strongbox",
  "Group=strongbox",
  "UMask=0077",
  "Environment=STRONGBOX_CONFIG=/etc/strongbox/strongbox.yaml",
  "StateDirectory=strongbox",
  "StateDirectoryMode=0700",
  // The state directory (catalog, restore-test scratch space) and the example's local repository;
  // "-": a host whose repositories are all remote has no /var/backups/strongbox.
  "ReadWritePaths=/var/lib/strongbox -/var/backups/strongbox",
  "NoNewPrivileges=yes",
  "ProtectSystem=strict",
  "ProtectHome=yes",
  "PrivateTmp=yes",
  "PrivateDevices=yes",
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectKernelLogs=yes",
  "ProtectControlGroups=yes",
  "ProtectClock=yes",
  "ProtectHostname=yes",
  "RestrictSUIDSGID=yes",
  "RestrictRealtime=yes",
  "RestrictNamespaces=yes",
  "LockPersonality=yes",
  "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
  "SystemCallArchitectures=native",
  "CapabilityBoundingSet=",
  "AmbientCapabilities=",
  // Not MemoryDenyWriteExecute: Node's JIT compiler needs writable code pages.
];

const UNIT_HEAD = [
  "Documentation=man:strongbox(1) file:///usr/share/doc/strongbox/quickstart.md",
  "After=network-online.target",
  "Wants=network-online.target",
  "ConditionPathExists=/etc/strongbox/strongbox.yaml",
];

interface Job {
  name: string;
  what: string;
  command: string;
  onCalendar: string;
  /** A template (strongbox-copy@offsite.timer): %i is the instance. */
  template?: boolean;
}

/** Defaults that match the daemon's documented schedule (docs/scheduling.md). */
const JOBS: Job[] = [
  { name: "full", what: "full backup", command: "backup --full", onCalendar: "Sun *-*-* 02:00:00" },
  {
    name: "incremental",
    what: "incremental backup",
    command: "backup --incremental",
    onCalendar: "Mon..Sat *-*-* 02:00:00",
  },
  { name: "verify", what: "verify of every backup", command: "verify --all", onCalendar: "*-*-* 06:00:00" },
  {
    name: "restore-test",
    what: "restore-test of the newest backup",
    command: "restore-test",
    onCalendar: "Sat *-*-* 07:00:00",
  },
  {
    name: "copy",
    what: "copy of missing backups to repository %i",
    command: "copy --missing --to %i",
    onCalendar: "*-*-* 03:30:00",
    template: true,
  },
  { name: "prune", what: "prune by the retention policy", command: "prune", onCalendar: "*-*-* 05:00:00" },
];

function unit(sections: Record<string, string[]>): string {
  return `${Object.entries(sections)
    .map(([name, lines]) => [`[${name}]`, ...lines].join("\n"))
    .join("\n\n")}\n`;
}

/** File name → contents, for /lib/systemd/system. */
export function renderUnits(): Record<string, string> {
  const out: Record<string, string> = {};
  out["strongbox-daemon.service"] = unit({
    Unit: ["Description=Strongbox backup scheduler (strongbox daemon)", ...UNIT_HEAD],
    Service: [
      "Type=simple",
      "ExecStart=/usr/bin/strongbox daemon",
      // SIGTERM to the daemon only: it stops its jobs cleanly (desync undone, nothing committed half).
      "KillMode=mixed",
      "TimeoutStopSec=10min",
      "Restart=on-failure",
      "RestartSec=30s",
      ...HARDENING,
    ],
    Install: ["WantedBy=multi-user.target"],
  });
  out["strongbox-binlog.service"] = unit({
    Unit: ["Description=Strongbox continuous binary log archiving", ...UNIT_HEAD],
    Service: [
      "Type=simple",
      "ExecStart=/usr/bin/strongbox binlog archive --follow",
      // The spool of received binlog events: a tmpfs only this service sees (docs/pitr.md).
      "RuntimeDirectory=strongbox-binlog",
      "RuntimeDirectoryMode=0700",
      "KillMode=mixed",
      "TimeoutStopSec=2min",
      "Restart=always",
      "RestartSec=10s",
      ...HARDENING,
    ],
    Install: ["WantedBy=multi-user.target"],
  });
  out["strongbox-serve.service"] = unit({
    Unit: ["Description=Strongbox dashboard, JSON API and /metrics (strongbox serve)", ...UNIT_HEAD],
    Service: [
      "Type=simple",
      "ExecStart=/usr/bin/strongbox serve",
      "Restart=on-failure",
      "RestartSec=10s",
      ...HARDENING,
    ],
    Install: ["WantedBy=multi-user.target"],
  });
  for (const j of JOBS) {
    const base = `strongbox-${j.name}${j.template ? "@" : ""}`;
    out[`${base}.service`] = unit({
      Unit: [`Description=Strongbox ${j.what}`, ...UNIT_HEAD],
      Service: [
        "Type=oneshot",
        `ExecStart=/usr/bin/strongbox ${j.command}`,
        "KillMode=mixed",
        "TimeoutStopSec=10min",
        ...HARDENING,
      ],
    });
    out[`${base}.timer`] = unit({
      Unit: [`Description=Strongbox ${j.what}, on a schedule`, "Documentation=man:strongbox(1)"],
      Timer: [`OnCalendar=${j.onCalendar}`, "Persistent=true", "RandomizedDelaySec=5min"],
      Install: ["WantedBy=timers.target"],
    });
  }
  return out;
}
