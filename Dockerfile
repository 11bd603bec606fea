# syntax=docker/dockerfile:1
# The plugin server image: the Node entry over a local directory (the embedded examples) or S3,
# and the uploader CLI (node dist/uploader.js) that fills the store.
# Build: docker build -t higress-plugin-server .   Run: docker run -p 8080:8080 higress-plugin-server
# Self-contained (Higress's own pluginServer slot: the default plugin set inside, no env, no volumes):
#   docker build --target self-contained -t <hub>/higress/plugin-server:<tag> .
#   without access to the official registry: --build-arg SYNC_ARGS="--mirror higress-registry.cn-hangzhou.cr.aliyuncs.com=harbor.internal/higress"
#   a private registry's login: --secret id=docker-config,src=$HOME/.docker/config.json

# --- build: bundle src/ with esbuild (dev dependencies live only in this stage) ---
# Node 24 LTS, pinned by digest (refresh with the tag: docker buildx imagetools inspect node:24-bookworm-slim).
FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are copied; esbuild still needs its own install step.
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild esbuild
# A C compiler for the sendfile(2) addon (dist/sendfile.node; the node image has Node-API's headers).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/build-native.mjs scripts/
COPY src src
COPY uploader uploader
# An image without the addon would copy every byte it sends: the build fails instead.
RUN node scripts/build.mjs && test -f dist/sendfile.node

# --- runtime: STORE names a directory or a bucket; unset, the embedded examples ---
FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS runtime
# Set by the release workflow: the version (package.json's, = the tag) and the commit.
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="higress-plugin-server" \
      org.opencontainers.image.description="Serves Wasm plugins to Higress gateways from a directory, MinIO/S3 or R2; with the plugin-uploader CLI" \
      org.opencontainers.image.source="https://github.com/higress-plugin-server/higress-plugin-server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# curl: Higress's docker-compose health check runs `curl -sf http://127.0.0.1:8080/` inside the container.
# tini: PID 1 that forwards SIGTERM to node and reaps zombies, so shutdown is graceful.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl tini \
 && rm -rf /var/lib/apt/lists/*
# The server sets its memory behaviour itself (src/node/memory.ts): nothing to repeat here.
# NODE_USE_ENV_PROXY: fetch and http honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY (the uploader behind an egress proxy).
ENV NODE_ENV=production \
    NODE_USE_ENV_PROXY=1 \
    PORT=8080 \
    HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (hono, @hono/node-server, @aws-sdk/client-s3); the bundles import them.
# --ignore-scripts: "prepare" would rebuild with esbuild, a dev dependency absent here.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist dist
# The embedded default store (STORE unset): example plugins, served read-only.
COPY examples/store examples/store
# The image's own "node" user (uid 1000); nothing under /app is writable by it.
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD curl -sf http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/node.js"]

# --- plugins: the default plugin set (uploader/plugins.default.json), pulled, checked by digest and verified at build time ---
FROM build AS plugins
ARG SYNC_ARGS=""
# A build that cannot publish every version fails here (exit 1), never ships a partial set.
# Readable by any UID (OpenShift's arbitrary UIDs, Higress's pod template sets none).
RUN --mount=type=secret,id=docker-config,target=/root/.docker/config.json,required=false \
    node dist/uploader.js sync --to /app/store --concurrency 8 ${SYNC_ARGS} \
 && node dist/uploader.js verify --to /app/store \
 && chmod -R a+rX,go-w /app/store

# --- self-contained: a drop-in for Higress's pluginServer image (global.enablePluginServer: true) ---
# Higress's template runs it with port 8080, no env, no volumes, 128Mi requested and 256Mi at most.
FROM runtime AS self-contained
LABEL org.opencontainers.image.title="higress-plugin-server (self-contained)" \
      org.opencontainers.image.description="Every official Higress plugin at every version a Console release asks for, served like the reference plugin-server image"
COPY --from=plugins /app/store /app/store
# The store is the image's own directory: read-only, nothing to revalidate, the OS page cache holds it.
ENV STORE=/app/store \
    CACHE_MAX_MB=32

# The default target: the plain runtime image above.
FROM runtime
