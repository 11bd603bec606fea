{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "hps.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release and chart, unless the release name already holds the chart name. */}}
{{- define "hps.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hps.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "hps.labels" -}}
helm.sh/chart: {{ include "hps.chart" . }}
{{ include "hps.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hps.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hps.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hps.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hps.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hps.uploaderServiceAccountName" -}}
{{- if .Values.uploader.serviceAccount.create }}
{{- default (printf "%s-uploader" (include "hps.fullname" .) | trunc 63 | trimSuffix "-") .Values.uploader.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.uploader.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hps.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "hps.minio.fullname" -}}
{{- printf "%s-minio" (include "hps.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* MinIO's users for the server (read-only) and the uploader (read-write); their keys are generated once. */}}
{{- define "hps.minio.identity" -}}
{{- $given := index .root.Values.minio.identities.existingSecrets .role }}
{{- if $given }}{{ $given }}{{ else }}{{ printf "%s-store-%s" (include "hps.fullname" .root) .role | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{/*
The Secret with the S3 keys of a role ("reader": the server, "writer": the uploader), or none (the
default AWS chain); (dict "root" $ "role" "reader"|"writer"). With MinIO's identities the root keys
stay with MinIO's pod.
*/}}
{{- define "hps.s3SecretName" -}}
{{- with .root }}
{{- if and .Values.minio.enabled .Values.minio.identities.enabled }}
{{- include "hps.minio.identity" (dict "root" . "role" $.role) }}
{{- else if .Values.minio.enabled }}
{{- default (include "hps.minio.fullname" .) .Values.minio.existingSecret }}
{{- else if and (eq $.role "reader") .Values.storage.serverSecret }}
{{- .Values.storage.serverSecret }}
{{- else if .Values.storage.existingSecret }}
{{- .Values.storage.existingSecret }}
{{- else if .Values.storage.accessKeyId }}
{{- printf "%s-s3" (include "hps.fullname" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* STORE and the S3 variables of a role, from the ConfigMap and the role's Secret: (dict "root" $ "role" "reader"|"writer"). */}}
{{- define "hps.storeEnv" -}}
{{- with .root -}}
- name: STORE
  valueFrom: {configMapKeyRef: {name: {{ include "hps.fullname" . }}, key: STORE}}
- name: S3_REGION
  valueFrom: {configMapKeyRef: {name: {{ include "hps.fullname" . }}, key: S3_REGION}}
- name: S3_FORCE_PATH_STYLE
  valueFrom: {configMapKeyRef: {name: {{ include "hps.fullname" . }}, key: S3_FORCE_PATH_STYLE}}
{{- if or .Values.minio.enabled .Values.storage.endpoint }}
- name: S3_ENDPOINT
  valueFrom: {configMapKeyRef: {name: {{ include "hps.fullname" . }}, key: S3_ENDPOINT}}
{{- end }}
{{- with include "hps.s3SecretName" $ }}
{{- $root := and $.root.Values.minio.enabled (not $.root.Values.minio.identities.enabled) }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ ternary "MINIO_ROOT_USER" "AWS_ACCESS_KEY_ID" $root }}}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ ternary "MINIO_ROOT_PASSWORD" "AWS_SECRET_ACCESS_KEY" $root }}}}
{{- end }}
{{- end }}
{{- end }}

{{/* An image reference: repository with digest, or with tag. (dict "image" .Values.x.image "tag" default) */}}
{{- define "hps.imageRef" -}}
{{- if .image.digest }}{{ printf "%s@%s" .image.repository .image.digest }}{{ else }}{{ printf "%s:%s" .image.repository (default .tag .image.tag) }}{{ end }}
{{- end }}

{{/* The sync command line of the uploader Job and CronJobs; (dict "root" $ "deadline" <the Job's activeDeadlineSeconds>): the waits fit in it. */}}
{{- define "hps.uploaderArgs" -}}
{{- $deadline := int .deadline }}
{{- with .root -}}
- sync
{{- if or .Values.uploader.pluginsProperties .Values.uploader.config }}
- --config
- {{ ternary "/config/plugins.properties" "/config/plugins.yaml" (not (empty .Values.uploader.pluginsProperties)) }}
{{- end }}
- --concurrency
- {{ .Values.uploader.concurrency | quote }}
- --wait-for-store
- {{ min .Values.uploader.storeWaitSeconds (div $deadline 2) | quote }}
- --wait-for-lease
- {{ min .Values.uploader.leaseWaitSeconds (div $deadline 2) | quote }}
{{- range .Values.uploader.mirrors }}
- --mirror
- {{ . | quote }}
{{- end }}
{{- range .Values.uploader.plainHttp }}
- --plain-http
- {{ . | quote }}
{{- end }}
{{- if .Values.uploader.prune }}
- --prune
{{- end }}
{{- range .Values.uploader.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The in-cluster base URL of the plugin Service (what the Console pattern and the gateways use). */}}
{{- define "hps.baseUrl" -}}
{{- $host := printf "%s.%s.svc" .Values.service.name .Release.Namespace }}
{{- ternary (printf "http://%s" $host) (printf "http://%s:%v" $host .Values.service.port) (eq (int .Values.service.port) 80) }}
{{- end }}

{{/* The cluster check's command line: check (or sync) --from-cluster --record; (dict "root" $ "deadline" <seconds>). */}}
{{- define "hps.clusterArgs" -}}
{{- $deadline := .deadline }}
{{- with .root -}}
{{- $c := .Values.uploader.cluster }}
{{- if $c.sync }}
{{- if .Values.uploader.prune }}{{ fail "uploader.cluster.sync cannot go with uploader.prune: the cluster's view is not the whole plan" }}{{ end }}
{{- include "hps.uploaderArgs" (dict "root" . "deadline" $deadline) }}
{{- else }}
- check
- --exit-zero
- --wait-for-store
- {{ min .Values.uploader.storeWaitSeconds (div (int $deadline) 2) | quote }}
{{- end }}
- --from-cluster
- --record
{{- with $c.namespace }}
- --namespace
- {{ . | quote }}
{{- end }}
{{- range ($c.serverUrls | default (list (include "hps.baseUrl" .))) }}
- --server-url
- {{ . | quote }}
{{- end }}
- --console-pattern
- {{ default (printf "%s/plugins/${name}/${version}/plugin.wasm" (include "hps.baseUrl" .)) $c.consolePattern | quote }}
- --controller
- {{ if $c.controller }}{{ printf "%s/%s" $c.controller.namespace $c.controller.name | quote }}{{ else }}none{{ end }}
{{- end }}
{{- end }}

{{/*
The uploader pod spec, shared by the sync Job and the CronJobs:
(dict "root" $ "command" "sync"|"verify"|"cluster" "deadline" <the Job's activeDeadlineSeconds>).
*/}}
{{- define "hps.uploaderPod" -}}
{{- $command := .command }}
{{- $deadline := .deadline }}
{{- with .root }}
restartPolicy: Never
{{- if eq $command "cluster" }}
serviceAccountName: {{ include "hps.fullname" . }}-cluster-reader
# This pod reads WasmPlugins with its own token; no other pod of the chart mounts one.
automountServiceAccountToken: true
{{- else }}
serviceAccountName: {{ include "hps.uploaderServiceAccountName" . }}
automountServiceAccountToken: false
{{- end }}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: uploader
    image: {{ include "hps.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["node", "/app/dist/uploader.js"]
    {{- if eq $command "verify" }}
    args: ["verify", "--wait-for-store", {{ min .Values.uploader.storeWaitSeconds (div (int $deadline) 2) | quote }}]
    {{- else if eq $command "cluster" }}
    args: {{- include "hps.clusterArgs" (dict "root" . "deadline" $deadline) | nindent 6 }}
    {{- else }}
    args: {{- include "hps.uploaderArgs" (dict "root" . "deadline" $deadline) | nindent 6 }}
    {{- end }}
    env:
      {{- include "hps.storeEnv" (dict "root" . "role" "writer") | nindent 6 }}
      {{- $registrySecret := default (printf "%s-registry" (include "hps.fullname" .)) .Values.uploader.registryCredentials.existingSecret }}
      {{- if or .Values.uploader.registryCredentials.existingSecret .Values.uploader.registryCredentials.username }}
      - name: REGISTRY_USERNAME
        valueFrom: {secretKeyRef: {name: {{ $registrySecret }}, key: REGISTRY_USERNAME}}
      - name: REGISTRY_PASSWORD
        valueFrom: {secretKeyRef: {name: {{ $registrySecret }}, key: REGISTRY_PASSWORD}}
      {{- $hosts := list }}
      {{- range (.Values.uploader.registryCredentials.hosts | default list) }}{{ $hosts = append $hosts . }}{{ end }}
      {{- if not $hosts }}
      {{- range .Values.uploader.mirrors }}{{ $hosts = append $hosts (first (splitList "/" (last (splitList "=" .)))) }}{{ end }}
      {{- end }}
      {{- if not $hosts }}
      {{- fail "uploader.registryCredentials.hosts must name the registries (host[:port]) the credentials are for: they are sent to no other (REGISTRY_HOSTS)" }}
      {{- end }}
      - name: REGISTRY_HOSTS
        value: {{ join "," $hosts | quote }}
      {{- end }}
      {{- with .Values.uploader.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    securityContext: {{- toYaml .Values.securityContext | nindent 6 }}
    resources: {{- toYaml .Values.uploader.resources | nindent 6 }}
    volumeMounts:
      - {name: config, mountPath: /config, readOnly: true}
      - {name: tmp, mountPath: /tmp}
      {{- with .Values.uploader.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap: {name: {{ include "hps.fullname" . }}-uploader}
  - name: tmp
    emptyDir: {}
  {{- with .Values.uploader.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Secrets with the download credentials (the chart's own one when values are given inline). */}}
{{- define "hps.basicSecretName" -}}
{{- if .Values.auth.basic.existingSecret }}{{ .Values.auth.basic.existingSecret }}{{- else if .Values.auth.basic.htpasswd }}{{ include "hps.fullname" . }}-auth{{- end }}
{{- end }}

{{- define "hps.tokensSecretName" -}}
{{- if .Values.auth.tokens.existingSecret }}{{ .Values.auth.tokens.existingSecret }}{{- else if .Values.auth.tokens.values }}{{ include "hps.fullname" . }}-auth{{- end }}
{{- end }}

{{/* "true" when the cluster check is rendered: uploader and check on, and the WasmPlugin CRD served by the API. */}}
{{- define "hps.clusterCheck" -}}
{{- if and .Values.uploader.enabled .Values.uploader.cluster.enabled (.Capabilities.APIVersions.Has "extensions.higress.io/v1alpha1") }}true{{ end }}
{{- end }}
