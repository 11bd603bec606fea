#!/bin/bash
# Project copy of ../shared/recipes/s3-radosgw-up.sh; MON_PORT added (so several instances can run) and the mon
# address pinned to msgr v1, which clients otherwise only assume on the default port.
# Single-node Ceph (mon + memstore OSD) + radosgw S3 endpoint on 127.0.0.1:7480, all state under $C.
# Needs (Debian): apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common   (about 16 s)
# Cold start about 15 s, plus about 6 s on first bucket use. A real S3 implementation: checks SigV4, Content-MD5, ranges, conditionals.
set -euo pipefail
C=${C:-${TMPDIR:-/tmp}/s3-rgw}; PORT=${PORT:-7480}; MON_PORT=${MON_PORT:-6789}
AK=${AK:-RGWACCESSKEY}; SK=${SK:-RGWSECRETKEY}
rm -rf "$C"; mkdir -p "$C"/{mon,osd,run,log,rgw}
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$C/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = [v1:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
# The OSD keeps its data in memory: the mon's few MB must not refuse to start on a nearly full disk
# (the default stops it below 5% free).
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-1073741824}
osd crush chooseleaf type = 0
run dir = $C/run
log file = $C/log/\$name.log
admin socket = $C/run/\$name.asok
pid file = $C/run/\$name.pid
mon data = $C/mon/\$name
osd data = $C/osd/\$name
[client.rgw]
# tcp_nodelay: without it beast sends a small answer's body behind its headers only once the
# client ACKs them (Nagle against delayed ACK): every GET of a small object waits 40 ms.
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $C/rgw
CONF
export CEPH_CONF=$C/ceph.conf
monmaptool --create --clobber --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$C/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$C/monmap" 2>/dev/null
ceph-mon -i a
# Retry what talks to the cluster: on a busy machine the mon can take a while to answer.
retry() { for i in $(seq 1 20); do "$@" && return 0; sleep 1; done; echo "failed: $*" >&2; return 1; }
retry ceph --connect-timeout 10 mon stat >/dev/null 2>&1
ID=$(retry ceph --connect-timeout 10 osd create)
mkdir -p "$C/osd/osd.$ID"
ceph-osd -i "$ID" --mkfs 2>/dev/null
retry ceph --connect-timeout 10 osd crush add-bucket node1 host >/dev/null 2>&1
retry ceph --connect-timeout 10 osd crush move node1 root=default >/dev/null 2>&1
retry ceph --connect-timeout 10 osd crush add "osd.$ID" 1.0 host=node1 >/dev/null 2>&1
# The OSD's first start fails now and then (exit 250) on a machine where another cluster just stopped: start it again.
retry ceph-osd -i "$ID" 2>/dev/null
retry radosgw -n client.rgw
retry radosgw-admin user create --uid=tester --display-name=Tester --access-key="$AK" --secret="$SK" >/dev/null
for i in $(seq 1 600); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" || { echo "radosgw does not answer on $PORT; logs in $C/log" >&2; exit 1; }
echo "radosgw S3 endpoint http://127.0.0.1:$PORT  access=$AK secret=$SK"
