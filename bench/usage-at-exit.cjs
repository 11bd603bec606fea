// Preloaded (node --require) into a measured process: at exit, its peak RSS (VmHWM: getrusage's
// maxRSS would include the forking parent's, kept across exec) and the CPU seconds of its threads
// by kind (the main thread, libuv's pool, V8's helpers) go to $BENCH_USAGE_FILE.
process.on("exit", () => {
  const fs = require("node:fs");
  const peak = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  const threads = {};
  for (const task of fs.readdirSync("/proc/self/task")) {
    const stat = fs.readFileSync(`/proc/self/task/${task}/stat`, "utf8");
    const name = /\((.*)\)/.exec(stat)[1].replace(/\d+$/, "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    threads[name] = (threads[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks
  }
  const usage = process.resourceUsage();
  fs.writeFileSync(
    process.env.BENCH_USAGE_FILE,
    JSON.stringify({ maxRssMiB: Number(peak[1]) / 1024, cpu: (usage.userCPUTime + usage.systemCPUTime) / 1e6, threads }),
  );
});
