import { Command, CommanderError, Option } from "commander";
import { closest } from "../suggest.ts";
import { COMMANDS, EPILOG, OPTIONS, type CommandName, type OptionName, type Values } from "./spec.ts";

/** What the command line asks for: a command to run, or an exit code once help, the version or a usage error was printed. */
export type CommandLine = { readonly command: CommandName; readonly args: readonly string[]; readonly values: Values } | { readonly exit: number };

interface Output {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const isCommand = (name: string | undefined): name is CommandName => name !== undefined && Object.hasOwn(COMMANDS, name);
const COMMAND_NAMES = Object.keys(COMMANDS);
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Parses argv (after the program name) with commander, built from spec.ts; usage errors become one line with a hint, exit 2. */
export function parseCommandLine(argv: readonly string[], version: string, output: Output): CommandLine {
  let chosen: CommandLine | undefined;
  let failing: CommandName | undefined;
  const program = new Command("plugin-uploader")
    .description("fills a plugin store for Higress gateways from OCI registries, local files and offline bundles")
    .usage("<command> [options]")
    .version(`plugin-uploader ${version}`, "-V, --version", "print the version")
    .helpOption("-h, --help", "this text")
    .helpCommand(false)
    .addHelpText("after", EPILOG)
    .configureOutput({ writeOut: output.out, writeErr: output.err, outputError: () => {} })
    .exitOverride();
  for (const name of COMMAND_NAMES as CommandName[]) {
    const spec = COMMANDS[name];
    const command = program
      .command(name) // inherits the program's output, help option and suggestions
      .description(spec.summary)
      .usage(spec.usage)
      .addHelpText("after", EPILOG)
      .exitOverride((error) => {
        failing = name;
        throw error;
      });
    for (const argument of "arguments" in spec ? spec.arguments : []) command.argument(argument);
    for (const option of spec.options) {
      const { flags, kind, help } = OPTIONS[option];
      command.addOption(kind === "list" ? new Option(flags, help).argParser(collect) : new Option(flags, help));
    }
    command.action((...params: unknown[]) => {
      const args = params.slice(0, -2) as string[];
      chosen = { command: name, args, values: byLongName(command) };
    });
  }
  program
    .command("help [command]")
    .description("the help of a command")
    .action((wanted: string | undefined) => {
      if (wanted === undefined) program.outputHelp();
      else if (isCommand(wanted)) program.commands.find((c) => c.name() === wanted)!.outputHelp();
      else {
        chosen = { exit: usageError(output, unknownCommand(wanted)) };
        return;
      }
      chosen = { exit: 0 };
    });
  try {
    program.parse([...argv], { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    return { exit: exitFor(error, failing, output) };
  }
  return chosen ?? { exit: 0 };
}

/** Options as spec.ts names them (commander keys them in camelCase). */
function byLongName(command: Command): Values {
  const given = command.opts();
  const values: Record<string, unknown> = {};
  for (const option of command.options) {
    const value = given[option.attributeName()];
    if (value !== undefined && option.long) values[option.long.slice(2)] = value;
  }
  return values as Values;
}

const unknownCommand = (name: string) => {
  const near = closest(name, COMMAND_NAMES);
  return `unknown command "${name}"${near ? ` (did you mean ${near}?)` : ""}; plugin-uploader help lists the commands`;
};

function usageError(output: Output, message: string): number {
  output.err(`plugin-uploader: ${message}\n`);
  return 2;
}

function exitFor(error: CommanderError, failing: CommandName | undefined, output: Output): number {
  switch (error.code) {
    case "commander.helpDisplayed":
    case "commander.version":
      return 0;
    case "commander.help": // no command: the usage was printed on stderr
      return 2;
    case "commander.unknownCommand":
      return usageError(output, unknownCommand(/'([^']*)'/.exec(error.message)?.[1] ?? ""));
    case "commander.unknownOption": {
      const flag = /'([^']*)'/.exec(error.message)?.[1] ?? "";
      const where = failing ?? "<command>";
      // Taken by another command: say so, rather than suggest a near name.
      if (failing && Object.hasOwn(OPTIONS, flag.replace(/^--/, ""))) return usageError(output, `${failing} does not take ${flag} (plugin-uploader ${failing} --help)`);
      const offered = failing ? COMMANDS[failing].options : (Object.keys(OPTIONS) as OptionName[]);
      const near = closest(flag.replace(/^-+/, ""), [...offered, "help"]);
      return usageError(output, `unknown option ${flag}${near ? ` (did you mean --${near}?)` : ""}; plugin-uploader ${where} --help lists the options`);
    }
    default: {
      // "error: missing required argument 'x'", "error: option '--to <store>' argument missing", ...
      const message = error.message.replace(/^error: /, "").replace(/\.$/, "");
      return usageError(output, `${message}; plugin-uploader ${failing ?? ""}${failing ? " " : ""}--help shows the usage`);
    }
  }
}
