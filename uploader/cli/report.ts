import type { ProgressEvent, Report } from "../pipeline.ts";

/** One line per plugin on stderr; on a terminal, a live counter line as well. */
export function progressPrinter(json: boolean) {
  const tty = process.stderr.isTTY && !json;
  let started = 0;
  let finished = 0;
  const line = (text: string) => process.stderr.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  const bar = () => {
    if (tty) process.stderr.write(`\r\x1b[K[${finished}/${started}] working...`);
  };
  return {
    event(e: ProgressEvent) {
      const what = `${e.name}${e.version ? ` ${e.version}` : ""}`;
      if (e.phase === "start") started++;
      else if (e.phase !== "alias" && e.phase !== "prune") finished++;
      const whole = e.phase === "failed" || e.phase === "conflict" || e.phase === "replaced";
      if (e.phase !== "start") line(`${e.phase.padEnd(13)} ${what}${e.detail ? `  ${whole ? e.detail : e.detail.slice(0, 80)}` : ""}`);
      bar();
    },
    done() {
      if (tty) process.stderr.write("\r\x1b[K");
    },
  };
}

export function printReport(report: Report & { purged?: readonly string[] }, json: boolean) {
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const count = (status: string) => report.versions.filter((v) => v.status === status).length;
  const parts = ["published", "unchanged", "would-publish", "failed"].map((s) => `${count(s)} ${s}`);
  for (const rare of ["replaced", "conflict"]) if (count(rare) > 0) parts.push(`${count(rare)} ${rare}`);
  process.stdout.write(`${report.versions.length} versions: ${parts.join(", ")}; ${report.aliases.length} alias sets; ${report.pruned.length} pruned\n`);
  for (const v of report.versions.filter((x) => x.status === "failed")) process.stdout.write(`FAILED ${v.name} ${v.version}: ${v.error}\n`);
  for (const v of report.versions.filter((x) => x.status === "conflict")) process.stdout.write(`CONFLICT ${v.name} ${v.version}: published ${v.previousSha256}, source ${v.sha256} (not written; --replace overwrites)\n`);
  for (const v of report.versions.filter((x) => x.status === "replaced")) process.stdout.write(`REPLACED ${v.name} ${v.version}: ${v.previousSha256} -> ${v.sha256}\n`);
  for (const a of report.aliases.filter((x) => x.status === "failed")) process.stdout.write(`FAILED aliases of ${a.name}: ${a.error}\n`);
  for (const u of report.unresolved ?? []) process.stdout.write(`UNRESOLVED ${u.plugin}${u.version ? ` ${u.version}` : ""}: ${u.why} (asked by ${u.from.join(", ")})\n`);
}

