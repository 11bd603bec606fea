// Regenerates the chart's README parameter tables and values.schema.json from the `## @param`
// comments in values.yaml (bitnami readme-generator), then tightens the schema where a type
// alone lets mistakes through. `--check` writes nothing and fails when the committed files differ.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const chart = path.resolve(import.meta.dirname, "../helm/higress-plugin-server");
const check = process.argv.includes("--check");
const work = mkdtempSync(path.join(tmpdir(), "helm-docs-"));
const readme = path.join(work, "README.md");
const schema = path.join(work, "values.schema.json");
copyFileSync(path.join(chart, "README.md"), readme);
const generator = path.resolve(import.meta.dirname, "../node_modules/.bin/readme-generator");
execFileSync(generator, ["-v", path.join(chart, "values.yaml"), "-r", readme, "-s", schema], { stdio: "ignore" });

const generated = JSON.parse(readFileSync(schema, "utf8"));
const at = (dotted) => dotted.split(".").reduce((node, key) => node.properties[key], generated);
const refine = {
  "image.pullPolicy": { enum: ["Always", "IfNotPresent", "Never"] },
  "image.digest": { pattern: "^(sha256:[0-9a-f]{64})?$" },
  "minio.image.pullPolicy": { enum: ["Always", "IfNotPresent", "Never"] },
  replicaCount: { type: "integer", minimum: 1 },
  "service.name": { pattern: "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$" },
  "service.type": { enum: ["ClusterIP", "NodePort", "LoadBalancer"] },
  "service.port": { type: "integer", minimum: 1, maximum: 65535 },
  "server.logFormat": { enum: ["text", "json"] },
  podAntiAffinity: { enum: ["soft", "hard", "none"] },
  "pdb.minAvailable": { type: ["integer", "string"] },
  "autoscaling.minReplicas": { type: "integer", minimum: 1 },
  "autoscaling.maxReplicas": { type: "integer", minimum: 1 },
  "autoscaling.targetCPUUtilizationPercentage": { type: "integer", minimum: 1, maximum: 100 },
  "storage.bucket": { pattern: "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$" },
  "uploader.concurrency": { type: "integer", minimum: 1, maximum: 64 },
  "uploader.leaseWaitSeconds": { type: "integer", minimum: 0, maximum: 86400 },
  "uploader.mirrors": { items: { type: "string", pattern: "^[^=]+=[^=]+$" } },
  "uploader.backoffLimit": { type: "integer", minimum: 0 },
  "uploader.activeDeadlineSeconds": { type: "integer", minimum: 60 },
  "uploader.storeWaitSeconds": { type: "integer", minimum: 0, maximum: 3600 },
  "uploader.job.activeDeadlineSeconds": { type: "integer", minimum: 60 },
  "uploader.job.ttlSecondsAfterFinished": { type: "integer", minimum: 0 },
  "metrics.port": { type: "integer", minimum: 1, maximum: 65535, not: { const: 8080 } },
  "auth.catalog": { enum: ["", "public", "auth", "off"] },
  "auth.tokens.values": { items: { type: "string", minLength: 16, pattern: "^[A-Za-z0-9._~+/-]+=*$" } },
  allowCidrs: { items: { type: "string" } },
  "ingress.hosts": { items: { type: "object", required: ["host", "paths"] } },
  "httpRoute.parentRefs": { items: { type: "object", required: ["name"] } },
  trustedProxies: { items: { type: "string" } },
};
for (const [key, extra] of Object.entries(refine)) Object.assign(at(key), extra);
generated.$schema = "http://json-schema.org/draft-07/schema#";
const schemaText = `${JSON.stringify(generated, null, 2)}\n`;

const outputs = [
  [path.join(chart, "README.md"), readFileSync(readme, "utf8")],
  [path.join(chart, "values.schema.json"), schemaText],
];
let stale = 0;
for (const [file, text] of outputs) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {}
  if (current === text) continue;
  if (check) {
    console.error(`${path.relative(process.cwd(), file)} is out of date: run node scripts/helm-docs.mjs`);
    stale++;
  } else {
    writeFileSync(file, text);
  }
}
process.exitCode = stale ? 1 : 0;
