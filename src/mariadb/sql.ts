// SQL text helpers shared by everything that builds statements from names it read from a server.

/** A schema or table name as a quoted identifier (backticks doubled). */
export function ident(name: string): string {
  return `\`${name.replace(/`/g, "``")}\``;
}
