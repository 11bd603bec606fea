// Preloaded (NODE_OPTIONS=--require) into a CLI under test: prints the process's peak RSS as it exits.
process.on("exit", () => {
  process.stderr.write(`max rss: ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB\n`);
});
