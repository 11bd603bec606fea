#!/bin/bash
# Debian packages the test suite needs: a C compiler for the sendfile addon (npm run build), and those it talks to: Ceph radosgw (real S3), the CNCF distribution registry
# with skopeo (real OCI), Go (a client built like the Higress gateway's downloader), and nginx
# with wrk for `npm run bench`, and Chromium for the catalog page tests. Run as root, or through sudo. Safe to run again.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
PACKAGES=(gcc libc6-dev radosgw ceph-mon ceph-osd ceph-common golang-go curl docker-registry skopeo apache2-utils openssl nginx-light wrk chromium)
missing=()
for p in "${PACKAGES[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "system packages ready: ${PACKAGES[*]}" >&2
