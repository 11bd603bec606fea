# syntax=docker/dockerfile:1
# The plugin server image: the Node entry over a local directory (the embedded examples) or S3,
# and the uploader CLI (node dist/uploader.js) that fills the store.
# Build: docker build -t higress-plugin-server .   Run: docker run -p 8080:8080 higress-plugin-server

# --- build: bundle src/ with esbuild (dev dependencies live only in this stage) ---
# Node 24 LTS, pinned by digest (refresh with the tag: docker buildx imagetools inspect node:24-bookworm-slim).
FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are copied; esbuild still needs its own install step.
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild esbuild
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/
COPY src src
COPY uploader uploader
RUN node scripts/build.mjs

# --- runtime ---
FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d
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
