import { describe, expect, test } from "vitest";
import { parseCommandLine, type CommandLine } from "../../uploader/cli/program.ts";
import { COMMANDS, OPTIONS, type CommandName, type OptionName } from "../../uploader/cli/spec.ts";

/** The command line as plugin-uploader parses it, with what it printed. */
function parse(...argv: string[]): { line: CommandLine; out: string; err: string } {
  let out = "";
  let err = "";
  const line = parseCommandLine(argv, "1.2.3", { out: (t) => (out += t), err: (t) => (err += t) });
  return { line, out, err };
}

const names = Object.keys(COMMANDS) as CommandName[];
const flagOf = (option: OptionName) => `--${option}`;

describe("plugin-uploader's command line (commander over cli/spec.ts)", () => {
  test.each(names)("help %s lists every option the command takes, and no other", (name) => {
    const { line, out } = parse("help", name);
    expect(line).toEqual({ exit: 0 });
    expect(out.split("\n")[0]).toBe(`Usage: plugin-uploader ${name} ${COMMANDS[name].usage}`);
    const listed = [...out.matchAll(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual([...COMMANDS[name].options.map(flagOf), "--help"].sort());
    expect(parse(name, "--help").out).toBe(out);
  });

  test("every option belongs to some command; the top-level help names every command", () => {
    const taken = new Set(names.flatMap((n) => COMMANDS[n].options));
    expect(Object.keys(OPTIONS).filter((o) => !taken.has(o as OptionName))).toEqual([]);
    const { line, out } = parse("--help");
    expect(line).toEqual({ exit: 0 });
    for (const name of names) expect(out).toMatch(new RegExp(`^ {2}${name} `, "m"));
    expect(out).toContain("Exit codes: 0 success");
  });

  test("values come back by their long names: repeatable options in order, flags as booleans, positionals", () => {
    expect(parse("sync", "--to", "s3://b/p", "--mirror", "a=b", "--mirror=c=d", "--dry-run", "-v").line).toEqual({
      command: "sync",
      args: [],
      values: { to: "s3://b/p", mirror: ["a=b", "c=d"], "dry-run": true, verbose: true },
    });
    expect(parse("import-dir", "plugins/", "--plugin-name", "x").line).toEqual({ command: "import-dir", args: ["plugins/"], values: { "plugin-name": "x" } });
    expect(parse("--version")).toMatchObject({ line: { exit: 0 }, out: "plugin-uploader 1.2.3\n" });
  });

  test.each([
    [["sync", "--forse"], "unknown option --forse (did you mean --force?); plugin-uploader sync --help lists the options"],
    [["list", "--force"], "list does not take --force (plugin-uploader list --help)"],
    [["verfy"], 'unknown command "verfy" (did you mean verify?); plugin-uploader help lists the commands'],
    [["help", "sink"], 'unknown command "sink" (did you mean sync?); plugin-uploader help lists the commands'],
    [["import-dir"], "missing required argument 'dir|file.wasm'; plugin-uploader import-dir --help shows the usage"],
    [["sync", "extra"], "too many arguments for 'sync'. Expected 0 arguments but got 1; plugin-uploader sync --help shows the usage"],
    [["sync", "--to"], "option '--to <store>' argument missing; plugin-uploader sync --help shows the usage"],
    [["--bogus"], "unknown option --bogus; plugin-uploader <command> --help lists the options"],
  ])("%j: one line, exit 2, nothing on stdout", (argv, message) => {
    expect(parse(...argv)).toEqual({ line: { exit: 2 }, out: "", err: `plugin-uploader: ${message}\n` });
  });

  test("no command: the usage on stderr, exit 2", () => {
    const { line, out, err } = parse();
    expect([line, out]).toEqual([{ exit: 2 }, ""]);
    expect(err).toMatch(/^Usage: plugin-uploader <command> \[options\]/);
  });
});
