// Preloaded (NODE_OPTIONS=--require) into a server under test: on SIGUSR2 it prints whether Node's
// fetch implementation (undici) has been loaded, which costs the process several MiB.
process.on("SIGUSR2", () => {
  process.stderr.write(`undici loaded: ${process.moduleLoadList.some((m) => m.includes("undici"))}\n`);
});
