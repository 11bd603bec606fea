import { execFile } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, test } from "vitest";
import { parseAllDocuments } from "yaml";
import { fixture, sha256 } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { ROOT, seedBucket, startNode } from "./support/targets.ts";

/**
 * The chart, validated offline: helm lint --strict and helm template for every documented
 * value set, each rendered object validated against the Kubernetes schemas (kubernetes-models),
 * and assertions on what makes it a drop-in for Higress's plugin server.
 */

const run = promisify(execFile);
const helm = inject("helm");
const s3 = inject("s3");
const CHART = path.join(ROOT, "helm/higress-plugin-server");

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> }; [key: string]: unknown };

const VALUE_SETS: Record<string, string[]> = {
  defaults: [],
  "external S3": ["--set", "minio.enabled=false", "--set", "storage.endpoint=https://s3.example.com", "--set", "storage.accessKeyId=AKIA", "--set", "storage.secretAccessKey=secret"],
  "existing secret": ["--set", "minio.enabled=false", "--set", "storage.existingSecret=plugin-store-keys", "--set", "minio.existingSecret=unused"],
  "HPA on": ["--set", "autoscaling.enabled=true", "--set", "podAntiAffinity=hard"],
  "YAML config": ["--set-string", "uploader.config=plugins:\n  key-auth:\n    versions:\n      2.0.0: oci://h.example/plugins/key-auth:2.0.0\n"],
  "minio off, AWS role": ["--set", "minio.enabled=false", "--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/plugins"],
  "properties, mirror, registry credentials, cron": [
    "--set-string", "uploader.pluginsProperties=key-auth=oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/key-auth:2.0.0\n",
    "--set", "uploader.mirrors[0]=higress-registry.cn-hangzhou.cr.aliyuncs.com=harbor.local/higress",
    "--set", "uploader.registryCredentials.username=robot", "--set", "uploader.registryCredentials.password=pw",
    "--set", "uploader.cronJob.enabled=true", "--set", "uploader.verifyCronJob.enabled=true", "--set", "image.digest=sha256:" + "a".repeat(64),
  ],
  "auth, allow-list, ServiceMonitor, dashboard": [
    "--set-string", `auth.basic.htpasswd=gateway:$2y$05$${"a".repeat(53)}`, "--set", "auth.tokens.values[0]=tok_0123456789abcdef0123",
    "--set", "auth.catalog=public", "--set", "allowCidrs[0]=10.0.0.0/8", "--set", "trustedProxies[0]=10.42.0.0/16",
    "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    "--set", "metrics.dashboard.enabled=true", "--set", "metrics.podAnnotations=true",
  ],
  "exposed, proxy and private CA, preStop": [
    "--set", "ingress.enabled=true", "--set", "ingress.className=higress", "--set", "ingress.tls[0].secretName=plugins-tls", "--set", "ingress.tls[0].hosts[0]=plugins.example.com",
    "--set", "httpRoute.enabled=true", "--set", "httpRoute.hostnames[0]=plugins.example.com",
    "--set", "uploader.extraEnv[0].name=HTTPS_PROXY", "--set", "uploader.extraEnv[0].value=http://proxy.corp:3128",
    "--set", "uploader.extraEnv[1].name=NODE_EXTRA_CA_CERTS", "--set", "uploader.extraEnv[1].value=/etc/corp-ca/ca.crt",
    "--set", "uploader.extraVolumes[0].name=corp-ca", "--set", "uploader.extraVolumes[0].configMap.name=corp-ca",
    "--set", "uploader.extraVolumeMounts[0].name=corp-ca", "--set", "uploader.extraVolumeMounts[0].mountPath=/etc/corp-ca",
    "--set", "server.extraVolumes[0].name=corp-ca", "--set", "server.extraVolumes[0].configMap.name=corp-ca",
    "--set", "server.extraVolumeMounts[0].name=corp-ca", "--set", "server.extraVolumeMounts[0].mountPath=/etc/corp-ca",
    "--set", "server.preStopSleepSeconds=10", "--set", "minio.networkPolicy.extraFrom[0].podSelector.matchLabels.app=backup",
  ],
  "cluster check (a Higress cluster)": ["--api-versions", "extensions.higress.io/v1alpha1", "--set", "uploader.cluster.sync=true"],
  "cluster check, one namespace": ["--api-versions", "extensions.higress.io/v1alpha1", "--set", "uploader.cluster.namespace=team-a", "--set", "uploader.cluster.controller=null"],
  "GitOps: every Secret given, a plain sync Job kept a day": [
    "--set", "minio.existingSecret=minio-root", "--set", "minio.identities.existingSecrets.reader=store-reader", "--set", "minio.identities.existingSecrets.writer=store-writer",
    "--set", "uploader.job.hook=false", "--set", "uploader.job.ttlSecondsAfterFinished=86400", "--set", "uploader.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/writer",
  ],
  "existing auth Secrets, metrics off": [
    "--set", "auth.basic.existingSecret=gw-htpasswd", "--set", "auth.tokens.existingSecret=ci-tokens", "--set", "metrics.enabled=false",
  ],
};

async function render(args: string[]): Promise<K8sObject[]> {
  const { stdout } = await run(helm!, ["template", "plugins", CHART, "--namespace", "higress-system", ...args], { maxBuffer: 16 << 20 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

async function validate(object: K8sObject): Promise<void> {
  // Prometheus Operator objects have their own models.
  const base = object.apiVersion.startsWith("monitoring.coreos.com/")
    ? "@kubernetes-models/prometheus-operator"
    : object.apiVersion.startsWith("gateway.networking.k8s.io/")
      ? "@kubernetes-models/gateway-api"
      : "kubernetes-models";
  const module = (await import(`${base}/${object.apiVersion}/${object.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  new module[object.kind]!(object).validate();
}

const find = (objects: K8sObject[], kind: string, suffix = "") =>
  objects.find((o) => o.kind === kind && o.metadata.name.endsWith(suffix));

describe.skipIf(!helm)("Helm chart", () => {
  test.each(Object.entries(VALUE_SETS))("%s: lints strictly, renders, and every object validates", async (_name, args) => {
    // lint has no --api-versions (what a cluster serves): it lints the rest.
    await run(helm!, ["lint", "--strict", CHART, ...args.filter((a, i) => a !== "--api-versions" && args[i - 1] !== "--api-versions")]);
    const objects = await render(args);
    expect(objects.length).toBeGreaterThan(5);
    for (const object of objects) await validate(object);
  });

  test("defaults: the Service Higress's Console expects, probes, hardened pods, hooks", async () => {
    const objects = await render([]);
    const service = find(objects, "Service", "higress-plugin-server") as { metadata: { name: string }; spec: { ports: { port: number; targetPort: string }[] } } & K8sObject;
    expect(service.metadata.name).toBe("higress-plugin-server");
    expect(service.spec.ports).toEqual([
      { name: "http", port: 80, targetPort: "http", protocol: "TCP" },
      { name: "metrics", port: 9090, targetPort: "metrics", protocol: "TCP" },
    ]);

    const deployment = find(objects, "Deployment") as K8sObject & { spec: any };
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.metadata.annotations["sidecar.istio.io/inject"]).toBe("false");
    const server = pod.containers[0];
    expect(server.ports[0]).toMatchObject({ name: "http", containerPort: 8080 });
    expect(server.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(server.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    const minioPod = (find(objects, "StatefulSet") as K8sObject & { spec: any }).spec.template.spec;
    for (const container of [...pod.containers, ...minioPod.containers]) {
      expect(container.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    }
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toHaveLength(1);
    // The bucket and the users are made by MinIO's setup sidecar; the server only reads.
    expect(pod.initContainers).toBeUndefined();
    const env = Object.fromEntries(server.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env.S3_ENDPOINT.configMapKeyRef.key).toBe("S3_ENDPOINT");
    expect(env.AWS_SECRET_ACCESS_KEY.secretKeyRef).toEqual({ name: "plugins-higress-plugin-server-store-reader", key: "AWS_SECRET_ACCESS_KEY" });

    const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "plugins-higress-plugin-server") as any;
    expect(config.data).toMatchObject({ STORE: "s3://higress-plugins", S3_ENDPOINT: "http://plugins-higress-plugin-server-minio:9000" });

    const job = find(objects, "Job") as K8sObject & { spec: any };
    expect(job.metadata.annotations).toMatchObject({ "helm.sh/hook": "post-install,post-upgrade", "helm.sh/hook-delete-policy": "before-hook-creation" });
    expect(job.spec.template.spec.containers[0].args).toEqual(["sync", "--concurrency", "4", "--wait-for-store", "120", "--wait-for-lease", "135"]);

    const secret = find(objects, "Secret", "-minio") as K8sObject & { data: Record<string, string> };
    expect(secret.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    expect(Buffer.from(secret.data.MINIO_ROOT_PASSWORD!, "base64").length).toBe(40);
    expect(find(objects, "PodDisruptionBudget")).toBeDefined();
    expect(find(objects, "HorizontalPodAutoscaler")).toBeUndefined();

    const test = find(objects, "Pod", "test-download") as K8sObject & { spec: any };
    expect(test.metadata.annotations?.["helm.sh/hook"]).toBe("test");
    expect(test.spec.containers[0].command.at(-1)).toBe("http://higress-plugin-server:80/plugins/key-auth/1.0.0/plugin.wasm");
  });

  test("the sync Job: its own ServiceAccount, waits for the store, fits in helm's timeout; hook and re-runs are values", async () => {
    const objects = await render([]);
    const job = find(objects, "Job", "-sync") as K8sObject & { spec: any };
    const pod = job.spec.template.spec;
    // Not the server's identity: the uploader writes, the server reads.
    expect(pod.serviceAccountName).toBe("plugins-higress-plugin-server-uploader");
    expect(pod.automountServiceAccountToken).toBe(false);
    const account = find(objects, "ServiceAccount", "-uploader") as K8sObject & { automountServiceAccountToken: boolean };
    expect(account.automountServiceAccountToken).toBe(false);
    expect((find(objects, "Deployment") as K8sObject & { spec: any }).spec.template.spec.serviceAccountName).toBe("plugins-higress-plugin-server");
    // helm waits 300 s for a hook by default: the Job's own deadline comes first, and both waits fit in it.
    const args: string[] = pod.containers[0].args;
    const wait = (flag: string) => Number(args[args.indexOf(flag) + 1]);
    expect(job.spec.activeDeadlineSeconds).toBeLessThan(300);
    expect(wait("--wait-for-store") + wait("--wait-for-lease")).toBeLessThan(job.spec.activeDeadlineSeconds);
    expect(wait("--wait-for-store")).toBeGreaterThan(0);
    // The scheduled Jobs wait as well; their deadline is their own.
    const scheduled = await render(["--set", "uploader.cronJob.enabled=true", "--set", "uploader.verifyCronJob.enabled=true"]);
    for (const cron of scheduled.filter((o) => o.kind === "CronJob") as (K8sObject & { spec: any })[]) {
      const spec = cron.spec.jobTemplate.spec;
      expect(spec.template.spec.containers[0].args, cron.metadata.name).toContain("--wait-for-store");
      expect(spec.template.spec.serviceAccountName).toBe("plugins-higress-plugin-server-uploader");
      expect(spec.activeDeadlineSeconds).toBe(1800);
    }

    const installOnly = find(await render(["--set", "uploader.job.onUpgrade=false"]), "Job", "-sync")!;
    expect(installOnly.metadata.annotations?.["helm.sh/hook"]).toBe("post-install");
    // Not a hook: one plain Job per revision (a Job's template cannot change), which helm does not wait for.
    const plain = find(await render(["--set", "uploader.job.hook=false", "--set", "uploader.job.ttlSecondsAfterFinished=600"]), "Job") as K8sObject & { spec: any };
    expect(plain.metadata.name).toBe("plugins-higress-plugin-server-sync-1");
    expect(plain.metadata.annotations?.["helm.sh/hook"]).toBeUndefined();
    expect(plain.spec.ttlSecondsAfterFinished).toBe(600);
    await expect(render(["--set", "uploader.job.hook=false", "--set", "uploader.job.onUpgrade=false"])).rejects.toThrow(/uploader.job.onUpgrade: false needs uploader.job.hook: true/);
    // An identity of the operator's own.
    const own = await render(["--set", "uploader.serviceAccount.create=false", "--set", "uploader.serviceAccount.name=plugin-writer"]);
    expect((find(own, "Job") as K8sObject & { spec: any }).spec.template.spec.serviceAccountName).toBe("plugin-writer");
    expect(find(own, "ServiceAccount", "-uploader")).toBeUndefined();
  });

  test("GitOps (helm template, Argo CD: no lookup): with the three Secrets given, the chart generates none, so nothing changes between renders", async () => {
    const given = ["--set", "minio.existingSecret=minio-root", "--set", "minio.identities.existingSecrets.reader=store-reader", "--set", "minio.identities.existingSecrets.writer=store-writer"];
    const [one, two] = [await render(given), await render(given)];
    expect(one.filter((o) => o.kind === "Secret")).toEqual([]);
    expect(JSON.stringify(one)).toBe(JSON.stringify(two));
    const refs = (o: K8sObject) => [...JSON.stringify(o).matchAll(/"secretKeyRef":\{"name":"([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(refs(find(one, "StatefulSet")!))).toEqual(new Set(["minio-root", "store-reader", "store-writer"]));
    expect(new Set(refs(find(one, "Deployment")!))).toEqual(new Set(["store-reader"]));
    expect(new Set(refs(find(one, "Job")!))).toEqual(new Set(["store-writer"]));
    // Without them, every render without a cluster invents new keys: the README says to give them.
    const [a, b] = [await render([]), await render([])];
    expect(JSON.stringify(a.filter((o) => o.kind === "Secret"))).not.toBe(JSON.stringify(b.filter((o) => o.kind === "Secret")));
  });

  test("MinIO: a maintained image, and the root keys stay in MinIO's pod (server read-only, uploader read-write)", async () => {
    const objects = await render([]);
    const minio = (find(objects, "StatefulSet") as K8sObject & { spec: any }).spec.template.spec;
    const [server, setup] = minio.containers;
    expect(server.image).toBe("cgr.dev/chainguard/minio:latest");
    expect(server.command).toEqual(["minio"]);
    expect(setup.name).toBe("setup");
    const script: string = setup.args[0];
    for (const step of ['mc mb --ignore-existing "local/$BUCKET"', "mc admin policy create local plugins-read", "mc admin policy create local plugins-write", 'mc admin user add local "$READER_KEY"', 'grep -q plugins-read']) {
      expect(script).toContain(step);
    }
    // The read policy grants reads and listing only.
    const read = /printf '(\{.*?\})' "\$BUCKET" "\$BUCKET" > \/tmp\/setup\/read\.json/.exec(script)![1]!.replaceAll("%s", "higress-plugins");
    const actions = (JSON.parse(read) as { Statement: { Action: string[] }[] }).Statement.flatMap((st) => st.Action);
    expect(actions.sort()).toEqual(["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket"]);
    expect(setup.readinessProbe.exec.command).toEqual(["test", "-f", "/tmp/setup/ready"]);

    // Who references the root Secret: MinIO's pod and nobody else.
    const rootUsers = objects.filter((o) => JSON.stringify(o).includes('"name":"plugins-higress-plugin-server-minio","key":"MINIO_ROOT'));
    expect(rootUsers.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["StatefulSet/plugins-higress-plugin-server-minio"]);
    const job = find(objects, "Job", "-sync") as K8sObject & { spec: any };
    const uploaderKey = job.spec.template.spec.containers[0].env.find((e: any) => e.name === "AWS_ACCESS_KEY_ID");
    expect(uploaderKey.valueFrom.secretKeyRef.name).toBe("plugins-higress-plugin-server-store-writer");
    for (const role of ["reader", "writer"]) {
      const secret = find(objects, "Secret", `-store-${role}`) as K8sObject & { data: Record<string, string> };
      expect(Buffer.from(secret.data.AWS_ACCESS_KEY_ID!, "base64").toString()).toMatch(new RegExp(`^plugins-${role}-[a-z0-9]{8}$`));
      expect(secret.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    }

    // Off: the old way (root keys, bucket made by the server's init container), for a MinIO image without mc.
    const off = await render(["--set", "minio.identities.enabled=false", "--set", "minio.image.repository=quay.io/minio/minio", "--set", "minio.image.digest=sha256:" + "b".repeat(64)]);
    const offPod = (find(off, "Deployment") as K8sObject & { spec: any }).spec.template.spec;
    expect(offPod.initContainers[0].command).toEqual(["node", "/app/dist/uploader.js", "create-bucket", "--wait", "300"]);
    expect((find(off, "StatefulSet") as any).spec.template.spec.containers.map((c: any) => c.image)).toEqual(["quay.io/minio/minio@sha256:" + "b".repeat(64)]);
    expect(find(off, "Secret", "-store-reader")).toBeUndefined();
  });

  test("examples/values-ceph-rgw.yaml: the server, configured as the chart renders it, serves plugins from a real radosgw", async () => {
    if (!s3) throw new Error("S3 service missing");
    const data = await fixture();
    const { bucket } = await seedBucket(s3, data.objects);
    const objects = await render(["-f", path.join(CHART, "examples/values-ceph-rgw.yaml"), "--set", `storage.endpoint=${s3.endpoint}`, "--set", `storage.bucket=${bucket}`, "--set", "storage.prefix=mirror"]);
    for (const object of objects) await validate(object);
    const config = (objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "plugins-higress-plugin-server") as unknown as { data: Record<string, string> }).data;
    const server = (find(objects, "Deployment") as any).spec.template.spec.containers[0];
    // Every variable of the rendered container: from the ConfigMap, the Secrets (radosgw's keys here), or literal.
    const env: Record<string, string> = {};
    for (const e of server.env as { name: string; value?: string; valueFrom?: any }[]) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom.configMapKeyRef) env[e.name] = config[e.valueFrom.configMapKeyRef.key]!;
      else if (e.valueFrom.secretKeyRef) {
        expect(e.valueFrom.secretKeyRef.name).toBe("plugins-rgw-reader");
        env[e.name] = e.name === "AWS_ACCESS_KEY_ID" ? s3.accessKeyId : s3.secretAccessKey;
      }
    }
    // Loopback ports, a cache directory of its own, and no drain delay (nothing routes to it).
    const local = { ...env, PORT: "0", HOST: "127.0.0.1", METRICS_PORT: "0", DRAIN_DELAY_SECONDS: "0", CACHE_DIR: await mkdtemp(path.join(tmpdir(), "rgw-cache-")) };
    const started = await startNode("rendered chart", local);
    try {
      const res = await request(`${started.url}/plugins/big/1.0.0/plugin.wasm`, { headers: { "Accept-Encoding": "identity" } });
      expect(res.status).toBe(200);
      expect(sha256(res.body)).toBe(sha256(data.objects.get("plugins/big/2.0.0/plugin.wasm")!));
      expect((await request(`${started.url}/readyz`)).status).toBe(200);
    } finally {
      await started.stop();
    }
  });

  test("an external S3 server can give the server read-only keys of its own (storage.serverSecret)", async () => {
    const objects = await render(["--set", "minio.enabled=false", "--set", "storage.endpoint=http://rgw.ceph.svc", "--set", "storage.existingSecret=rgw-writer", "--set", "storage.serverSecret=rgw-reader"]);
    const server = (find(objects, "Deployment") as any).spec.template.spec.containers[0];
    expect(server.env.find((e: any) => e.name === "AWS_ACCESS_KEY_ID").valueFrom.secretKeyRef.name).toBe("rgw-reader");
    const uploader = (find(objects, "Job", "-sync") as any).spec.template.spec.containers[0];
    expect(uploader.env.find((e: any) => e.name === "AWS_ACCESS_KEY_ID").valueFrom.secretKeyRef.name).toBe("rgw-writer");
    expect(find(objects, "NetworkPolicy")).toBeUndefined();
  });

  test("external S3 and HPA value sets wire what they say", async () => {
    const external = await render(VALUE_SETS["external S3"]!);
    expect(find(external, "StatefulSet")).toBeUndefined();
    expect((find(external, "Secret", "-s3") as any).stringData).toEqual({ AWS_ACCESS_KEY_ID: "AKIA", AWS_SECRET_ACCESS_KEY: "secret" });
    const pod = (find(external, "Deployment") as any).spec.template.spec;
    expect(pod.initContainers).toBeUndefined();
    const existing = await render(VALUE_SETS["existing secret"]!);
    const env = (find(existing, "Deployment") as any).spec.template.spec.containers[0].env;
    expect(env.find((e: any) => e.name === "AWS_ACCESS_KEY_ID").valueFrom.secretKeyRef).toEqual({ name: "plugin-store-keys", key: "AWS_ACCESS_KEY_ID" });
    const aws = await render(VALUE_SETS["minio off, AWS role"]!);
    const awsEnv = (find(aws, "Deployment") as any).spec.template.spec.containers[0].env.map((e: any) => e.name);
    expect(awsEnv).not.toContain("AWS_ACCESS_KEY_ID");
    expect(awsEnv).not.toContain("S3_ENDPOINT");

    const hpa = await render(VALUE_SETS["HPA on"]!);
    expect((find(hpa, "HorizontalPodAutoscaler") as any).spec).toMatchObject({ minReplicas: 2, maxReplicas: 10 });
    expect((find(hpa, "Deployment") as any).spec.replicas).toBeUndefined();
  });

  test("uploader values reach the sync command, its config and its credentials", async () => {
    const objects = await render(VALUE_SETS["properties, mirror, registry credentials, cron"]!);
    const job = find(objects, "Job") as any;
    const container = job.spec.template.spec.containers[0];
    expect(container.image).toBe(`ghcr.io/higress-plugin-server/higress-plugin-server@sha256:${"a".repeat(64)}`);
    expect(container.args).toEqual([
      "sync", "--config", "/config/plugins.properties", "--concurrency", "4", "--wait-for-store", "120", "--wait-for-lease", "135",
      "--mirror", "higress-registry.cn-hangzhou.cr.aliyuncs.com=harbor.local/higress",
    ]);
    expect(container.env.find((e: any) => e.name === "REGISTRY_PASSWORD").valueFrom.secretKeyRef.name).toBe("plugins-higress-plugin-server-registry");
    // The credentials go to the mirror's host only (review N8), unless the hosts are named.
    expect(container.env.find((e: any) => e.name === "REGISTRY_HOSTS").value).toBe("harbor.local");
    const named = find(await render([...VALUE_SETS["properties, mirror, registry credentials, cron"]!, "--set", "uploader.registryCredentials.hosts={registry.team:5000,harbor.local}"]), "Job") as any;
    expect(named.spec.template.spec.containers[0].env.find((e: any) => e.name === "REGISTRY_HOSTS").value).toBe("registry.team:5000,harbor.local");
    await expect(render(["--set", "uploader.registryCredentials.username=robot", "--set", "uploader.registryCredentials.password=pw"])).rejects.toThrow(
      /uploader.registryCredentials.hosts must name the registries \(host\[:port\]\) the credentials are for/,
    );
    const config = find(objects, "ConfigMap", "-uploader") as any;
    expect(config.data["plugins.properties"]).toBe("key-auth=oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/key-auth:2.0.0\n");
    expect((find(objects, "CronJob", "-sync") as any).spec.schedule).toBe("17 3 * * *");
    const verify = find(objects, "CronJob", "-verify") as any;
    expect(verify.spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(["verify", "--wait-for-store", "120"]);
    expect(verify.spec.jobTemplate.spec.template.spec.containers[0].env.map((e: any) => e.name)).toContain("STORE");
  });

  test("a YAML config reaches the Job as plugins.yaml", async () => {
    const objects = await render(VALUE_SETS["YAML config"]!);
    expect((find(objects, "Job") as any).spec.template.spec.containers[0].args.slice(0, 3)).toEqual(["sync", "--config", "/config/plugins.yaml"]);
    expect((find(objects, "ConfigMap", "-uploader") as any).data["plugins.yaml"]).toContain("2.0.0: oci://h.example/plugins/key-auth:2.0.0");
  });

  test("auth, metrics and allow-list values reach the server, its Service, the helm test and the monitors", async () => {
    const objects = await render(VALUE_SETS["auth, allow-list, ServiceMonitor, dashboard"]!);
    const secret = find(objects, "Secret", "-auth") as K8sObject & { stringData: Record<string, string> };
    expect(secret.stringData.tokens).toBe("tok_0123456789abcdef0123\n");
    expect(secret.stringData.htpasswd).toMatch(/^gateway:\$2y\$05\$a{53}\n$/);
    const deployment = find(objects, "Deployment") as K8sObject & { spec: any };
    const pod = deployment.spec.template.spec;
    const server = pod.containers[0];
    const env = Object.fromEntries(server.env.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({
      AUTH_BASIC_FILE: "/etc/plugin-server/auth/htpasswd",
      AUTH_TOKENS_FILE: "/etc/plugin-server/auth/tokens",
      CATALOG: "public",
      ALLOW_CIDRS: "10.0.0.0/8",
      TRUSTED_PROXIES: "10.42.0.0/16",
      METRICS: "true",
      METRICS_PORT: "9090",
    });
    expect(server.ports).toContainEqual({ name: "metrics", containerPort: 9090, protocol: "TCP" });
    expect(pod.volumes.find((v: any) => v.name === "auth").projected.sources).toHaveLength(2);
    expect(deployment.spec.template.metadata.annotations).toMatchObject({ "prometheus.io/scrape": "true", "prometheus.io/port": "9090" });
    expect(deployment.spec.template.metadata.annotations["checksum/auth"]).toMatch(/^[0-9a-f]{64}$/);

    const service = find(objects, "Service", "higress-plugin-server") as K8sObject & { spec: any };
    expect(service.spec.ports).toContainEqual({ name: "metrics", port: 9090, targetPort: "metrics", protocol: "TCP" });
    const monitor = find(objects, "ServiceMonitor") as K8sObject & { spec: any; metadata: any };
    expect(monitor.metadata.labels.release).toBe("kube-prometheus-stack");
    expect(monitor.spec.endpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "30s", scrapeTimeout: "10s" }]);
    // Only the server's Service matches: MinIO's carries the same name and instance labels.
    expect(monitor.spec.selector.matchLabels["app.kubernetes.io/component"]).toBe("server");
    expect(service.metadata.labels?.["app.kubernetes.io/component"]).toBe("server");

    const test = objects.find((o) => o.kind === "Pod") as K8sObject & { spec: any };
    expect(test.spec.volumes[0].secret.secretName).toBe("plugins-higress-plugin-server-auth");
    expect(test.spec.containers[0].env).toEqual([{ name: "BASIC_ONLY", value: "false" }]);
  });

  test("only this release's server and uploader reach MinIO (NetworkPolicy on by default)", async () => {
    const policy = find(await render([]), "NetworkPolicy") as K8sObject & { spec: any };
    expect(policy.spec.podSelector.matchLabels["app.kubernetes.io/component"]).toBe("minio");
    expect(policy.spec.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: { "app.kubernetes.io/name": "higress-plugin-server", "app.kubernetes.io/instance": "plugins" },
              matchExpressions: [{ key: "app.kubernetes.io/component", operator: "In", values: ["server", "uploader"] }],
            },
          },
        ],
        ports: [{ port: "s3", protocol: "TCP" }],
      },
    ]);
    expect(find(await render(["--set", "minio.enabled=false", "--set", "storage.endpoint=https://s3.example.com"]), "NetworkPolicy")).toBeUndefined();
  });

  test("Ingress, HTTPRoute, extra env and volumes (proxy, private CA) and preStop reach their objects", async () => {
    const objects = await render(VALUE_SETS["exposed, proxy and private CA, preStop"]!);
    const ingress = find(objects, "Ingress") as K8sObject & { spec: any };
    expect(ingress.spec.ingressClassName).toBe("higress");
    expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({ name: "higress-plugin-server", port: { name: "http" } });
    const route = find(objects, "HTTPRoute") as K8sObject & { spec: any };
    expect(route.spec.hostnames).toEqual(["plugins.example.com"]);
    expect(route.spec.rules[0].backendRefs).toEqual([{ name: "higress-plugin-server", port: 80 }]);
    const job = find(objects, "Job", "-sync") as K8sObject & { spec: any };
    const uploader = job.spec.template.spec.containers[0];
    expect(uploader.env).toContainEqual({ name: "HTTPS_PROXY", value: "http://proxy.corp:3128" });
    expect(uploader.volumeMounts).toContainEqual({ name: "corp-ca", mountPath: "/etc/corp-ca" });
    expect(job.spec.template.spec.volumes).toContainEqual({ name: "corp-ca", configMap: { name: "corp-ca" } });
    const deployment = find(objects, "Deployment") as K8sObject & { spec: any };
    const pod = deployment.spec.template.spec;
    expect(pod.containers[0].lifecycle.preStop.exec.command).toEqual(["sleep", "10"]);
    expect(pod.terminationGracePeriodSeconds).toBe(10 + 5 + 30 + 5);
    expect(pod.volumes).toContainEqual({ name: "corp-ca", configMap: { name: "corp-ca" } });
    const policy = find(objects, "NetworkPolicy") as K8sObject & { spec: any };
    expect(policy.spec.ingress[0].from[1]).toEqual({ podSelector: { matchLabels: { app: "backup" } } });
  });

  test("the Grafana dashboard is valid JSON and asks only for metrics the server exports", async () => {
    const objects = await render(VALUE_SETS["auth, allow-list, ServiceMonitor, dashboard"]!);
    const configMap = find(objects, "ConfigMap", "-dashboard") as K8sObject & { data: Record<string, string>; metadata: any };
    expect(configMap.metadata.labels.grafana_dashboard).toBe("1");
    const dashboard = JSON.parse(configMap.data["higress-plugin-server.json"]!);
    const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    const used = new Set(exprs.flatMap((e) => e.match(/\b(plugin_server_[a-z_]+|process_[a-z_]+)/g) ?? []));
    const exported = await readFile(path.join(ROOT, "src/node/metrics.ts"), "utf8");
    for (const name of used) {
      const family = name.replace(/_(bucket|sum|count)$/, "");
      const known = family.startsWith("process_") || exported.includes(`\${PREFIX}${family.slice("plugin_server_".length)}`);
      expect(known, name).toBe(true);
    }
  });

  test("the cluster check: only where the WasmPlugin CRD exists, read-only RBAC for its own ServiceAccount, the report recorded", async () => {
    const without = await render([]);
    expect(without.filter((o) => /cluster/.test(o.metadata.name))).toEqual([]);
    const NOTES = async (args: string[]) => (await run(helm!, ["install", "plugins", CHART, "--namespace", "higress-system", "--dry-run=client", ...args])).stdout;
    expect(await NOTES([])).toContain("The WasmPlugin CRD (extensions.higress.io/v1alpha1) was not found, so the cluster check is not installed");

    const objects = await render(["--api-versions", "extensions.higress.io/v1alpha1"]);
    const role = find(objects, "ClusterRole", "-cluster-reader") as any;
    expect(role.rules).toEqual([{ apiGroups: ["extensions.higress.io", "extensions.istio.io"], resources: ["wasmplugins"], verbs: ["get", "list", "watch"] }]);
    const binding = find(objects, "ClusterRoleBinding", "-cluster-reader") as any;
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "plugins-higress-plugin-server-cluster-reader", namespace: "higress-system" }]);
    const controller = find(objects, "Role", "-cluster-reader-controller") as any;
    expect([controller.metadata.namespace, controller.rules]).toEqual(["higress-system", [{ apiGroups: ["apps"], resources: ["deployments"], resourceNames: ["higress-controller"], verbs: ["get"] }]]);
    const cron = find(objects, "CronJob", "-cluster-check") as any;
    expect(cron.spec.concurrencyPolicy).toBe("Forbid");
    const pod = cron.spec.jobTemplate.spec.template.spec;
    expect([pod.serviceAccountName, pod.automountServiceAccountToken]).toEqual(["plugins-higress-plugin-server-cluster-reader", true]);
    expect(pod.containers[0].args).toEqual([
      "check", "--exit-zero", "--wait-for-store", "120", "--from-cluster", "--record",
      "--server-url", "http://higress-plugin-server.higress-system.svc",
      "--console-pattern", "http://higress-plugin-server.higress-system.svc/plugins/${name}/${version}/plugin.wasm",
      "--controller", "higress-system/higress-controller",
    ]);
    // Every other pod of the chart keeps its token unmounted.
    expect((find(objects, "ServiceAccount", "higress-plugin-server") as any).automountServiceAccountToken).toBe(false);

    const syncing = find(await render(VALUE_SETS["cluster check (a Higress cluster)"]!), "CronJob", "-cluster-check") as any;
    expect(syncing.spec.jobTemplate.spec.template.spec.containers[0].args.slice(0, 9)).toEqual(["sync", "--concurrency", "4", "--wait-for-store", "120", "--wait-for-lease", "900", "--from-cluster", "--record"]);
    const scoped = await render(VALUE_SETS["cluster check, one namespace"]!);
    expect((find(scoped, "Role", "-cluster-reader") as any).metadata.namespace).toBe("team-a");
    expect(find(scoped, "ClusterRole", "-cluster-reader")).toBeUndefined();
    expect(find(scoped, "Role", "-cluster-reader-controller")).toBeUndefined();
    expect((find(scoped, "CronJob", "-cluster-check") as any).spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(expect.arrayContaining(["--namespace", "team-a", "--controller", "none"]));
    await expect(render(["--api-versions", "extensions.higress.io/v1alpha1", "--set", "uploader.cluster.sync=true", "--set", "uploader.prune=true"])).rejects.toThrow(/uploader.cluster.sync cannot go with uploader.prune/);
  });

  test("bad values are refused by the schema", async () => {
    for (const args of [["--set", "podAntiAffinity=maybe"], ["--set", "service.port=0"], ["--set", "storage.bucket=Bad_Bucket"], ["--set", "uploader.concurrency=100"], ["--set", "auth.catalog=private"], ["--set", "auth.tokens.values[0]=short"], ["--set", "metrics.port=8080"]]) {
      await expect(render(args), args.join(" ")).rejects.toThrow(/values don't meet the specifications/);
    }
  });

  test("NOTES print the exact Higress values: Higress's own plugin server off, the Console's podEnvs (or kubectl set env)", async () => {
    const { stdout } = await run(helm!, ["install", "plugins", CHART, "--namespace", "higress-system", "--dry-run=client"]);
    // The values as they go into the Higress chart (the Console chart reads podEnvs as a map, and sets the pattern itself only with its own server).
    const block = /higress-values\.yaml\):\n\n([\s\S]*?)\n\nor on a running Console:\n  (.*)\n/.exec(stdout);
    expect(parseAllDocuments(block![1]!)[0]!.toJS()).toEqual({
      global: { enablePluginServer: false },
      "higress-console": { podEnvs: { HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN: "http://higress-plugin-server.higress-system.svc/plugins/${name}/${version}/plugin.wasm" } },
    });
    expect(block![2]).toBe("kubectl -n higress-system set env deployment/higress-console HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN='http://higress-plugin-server.higress-system.svc/plugins/${name}/${version}/plugin.wasm'");
    expect(stdout).not.toContain("nothing to change");
    const other = await run(helm!, ["install", "p", CHART, "--namespace", "gw", "--dry-run=client", "--set", "service.port=8080"]);
    expect(other.stdout).toContain('HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN: "http://higress-plugin-server.gw.svc:8080/plugins/${name}/${version}/plugin.wasm"');
    const basic = await run(helm!, ["install", "p", CHART, "--namespace", "higress-system", "--dry-run=client", "--set", "auth.basic.existingSecret=gw"]);
    expect(basic.stdout).toContain('HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN: "http://gateway:PASSWORD@higress-plugin-server.higress-system.svc/plugins/${name}/${version}/plugin.wasm"');
  });

  test("the README parameter tables and values.schema.json match values.yaml", async () => {
    await run(process.execPath, [path.join(ROOT, "scripts/helm-docs.mjs"), "--check"]);
  });
});
