// The man page and the bash and zsh completions, generated from the CLI's own command tree
// (src/cli/main.ts), so they list exactly the commands and options `strongbox --help` shows.
import type { Command, Option } from "commander";

/** Every command with a path ("sandbox up"), depth first, the program itself left out. */
export function commandsOf(program: Command): { path: string[]; cmd: Command }[] {
  const out: { path: string[]; cmd: Command }[] = [];
  const walk = (c: Command, path: string[]) => {
    for (const sub of c.commands) {
      const p = [...path, sub.name()];
      out.push({ path: p, cmd: sub });
      walk(sub, p);
    }
  };
  walk(program, []);
  return out;
}

function visibleOptions(c: Command): Option[] {
  return c.options.filter((o) => !o.hidden);
}

/** The description as --help shows it: with the default when there is one. */
function optionText(o: Option): string {
  const d = o.defaultValue as unknown;
  const shown = d === undefined || d === false || o.negate ? "" : ` (default: ${JSON.stringify(d)})`;
  return `${o.description}${shown}`;
}

/** roff with its special characters escaped; a leading dot or quote would start a request. */
function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .replace(/^([.'])/gm, "\\&$1");
}

function argsOf(c: Command): string {
  return c.registeredArguments
    .map((a) => {
      const n = `${a.name()}${a.variadic ? "..." : ""}`;
      return a.required ? `<${n}>` : `[${n}]`;
    })
    .join(" ");
}

export function renderManPage(program: Command, version: string, date: string): string {
  const lines: string[] = [
    `.\\" Generated from the command help by scripts/package.ts; do not edit.`,
    `.TH STRONGBOX 1 "${date}" "strongbox ${version}" "User Commands"`,
    ".SH NAME",
    `strongbox \\- ${roff(program.description())}`,
    ".SH SYNOPSIS",
    ".B strongbox",
    "[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]",
    ".SH DESCRIPTION",
    "Strongbox makes encrypted, signed, verified backups of MariaDB Galera clusters (and of a single",
    "MariaDB server) with mariabackup, stores them in local, SFTP or S3 repositories, copies them",
    "offsite, tests them by restoring them, and alerts when something is wrong.",
    "Every command has machine\\-readable output with \\fB\\-\\-json\\fR and meaningful exit codes.",
    ".SH GLOBAL OPTIONS",
  ];
  for (const o of visibleOptions(program)) lines.push(".TP", `.B ${roff(o.flags)}`, roff(optionText(o)));
  lines.push(".SH COMMANDS");
  for (const { path, cmd } of commandsOf(program)) {
    if (cmd.commands.length > 0 && !(cmd as unknown as { _actionHandler: unknown })._actionHandler) {
      lines.push(".SS", roff(`strongbox ${path.join(" ")}: ${cmd.description()}`));
      continue;
    }
    lines.push(".SS", roff(`strongbox ${path.join(" ")} ${argsOf(cmd)}`.trim()), roff(cmd.description()));
    for (const a of cmd.registeredArguments) {
      if (a.description) lines.push(".TP", `.I ${roff(a.name())}`, roff(a.description));
    }
    for (const o of visibleOptions(cmd)) lines.push(".TP", `.B ${roff(o.flags)}`, roff(optionText(o)));
  }
  lines.push(
    ".SH FILES",
    ".TP",
    ".I /etc/strongbox/strongbox.yaml",
    "The configuration, used when neither \\fB\\-\\-config\\fR nor \\fBSTRONGBOX_CONFIG\\fR is given and the",
    "current directory has no strongbox.yaml. Mode 0600, owned by the strongbox account.",
    ".TP",
    ".I /var/lib/strongbox",
    "State: the run catalog and the restore\\-test scratch space.",
    ".TP",
    ".I /usr/share/doc/strongbox/",
    "The operator documentation: quickstart.md first.",
    ".SH ENVIRONMENT",
    ".TP",
    ".B STRONGBOX_CONFIG",
    "The configuration file when \\fB\\-\\-config\\fR is not given.",
    ".TP",
    ".B AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_WEB_IDENTITY_TOKEN_FILE, ...",
    "S3 repositories without a credentialsFile take their credentials from the AWS SDK's default chain.",
    ".TP",
    ".B SSH_AUTH_SOCK",
    "SFTP repositories and node agents without a privateKey authenticate through this ssh\\-agent.",
    ".SH EXIT STATUS",
    "0 success; 1 a warning (check, audit, status); 2 a failure; 64 a usage error; 78 a configuration",
    "error; 70 an internal error (a bug); 130 interrupted. Each error code and its status:",
    "/usr/share/doc/strongbox/errors.md.",
    ".SH SEE ALSO",
    "\\fBsystemctl\\fR(1), \\fBmariabackup\\fR(1), \\fBage\\fR(1);",
    "the units strongbox\\-daemon.service and strongbox\\-*.timer.",
    "",
  );
  return lines.join("\n");
}

function flagsOf(c: Command): string[] {
  return visibleOptions(c).flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
}

/** bash: complete command words level by level, then the options of the command typed. */
export function renderBashCompletion(program: Command): string {
  const cases: string[] = [];
  const subs = (c: Command) => c.commands.map((s) => s.name()).join(" ");
  cases.push(`    "") words="${subs(program)} ${flagsOf(program).join(" ")} --help --version" ;;`);
  for (const { path, cmd } of commandsOf(program)) {
    cases.push(
      `    "${path.join(" ")}") words="${[subs(cmd), ...flagsOf(cmd), ...flagsOf(program), "--help"].filter(Boolean).join(" ")}" ;;`,
    );
  }
  const known = `|${commandsOf(program)
    .map((c) => c.path.join(" "))
    .join("|")}|`;
  return `# bash completion for strongbox; generated from the command help by scripts/package.ts.
_strongbox() {
  local cur cmdpath="" next w i words known="${known}"
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    next="\${cmdpath:+$cmdpath }$w"
    # Only command words extend the path: option values (--repo offsite) do not.
    [[ "$known" == *"|$next|"* ]] && cmdpath="$next"
  done
  case "$cmdpath" in
${cases.join("\n")}
    *) words="" ;;
  esac
  case "\${COMP_WORDS[COMP_CWORD-1]}" in
    -c|--config|--out|--target-dir|--identity|--dir|--password-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _strongbox strongbox
`;
}

/** zsh: the same table, as a completion function zsh's compinit finds by its #compdef line. */
export function renderZshCompletion(program: Command): string {
  const cases: string[] = [];
  const describe = (c: Command) =>
    c.commands.map((s) => `'${s.name()}:${s.description().replace(/[':]/g, " ").slice(0, 70)}'`).join(" ");
  const options = (c: Command) =>
    [...visibleOptions(c), ...visibleOptions(program)]
      .filter((o) => o.long)
      .map((o) => `'${o.long}[${o.description.replace(/['\][:]/g, " ").slice(0, 60)}]'`)
      .join(" ");
  const known = `|${commandsOf(program)
    .map((c) => c.path.join(" "))
    .join("|")}|`;
  cases.push(`    "") cmds=(${describe(program)}); opts=(${options(program)}) ;;`);
  for (const { path, cmd } of commandsOf(program)) {
    cases.push(`    "${path.join(" ")}") cmds=(${describe(cmd)}); opts=(${options(cmd)}) ;;`);
  }
  return `#compdef strongbox
# zsh completion for strongbox; generated from the command help by scripts/package.ts.
_strongbox() {
  local -a cmds opts
  # Not "path": in zsh that is the array tied to PATH.
  local cmdpath="" next w known="${known}"
  for w in \${words[2,CURRENT-1]}; do
    next="\${cmdpath:+$cmdpath }$w"
    [[ "$known" == *"|$next|"* ]] && cmdpath="$next"
  done
  case "$cmdpath" in
${cases.join("\n")}
    *) cmds=(); opts=() ;;
  esac
  if [[ \${words[CURRENT]} == -* ]]; then
    _values 'option' $opts
  elif (( \${#cmds} )); then
    _describe 'command' cmds
  else
    _files
  fi
}
_strongbox "$@"
`;
}
