#!/usr/bin/env bash
# HTTP remote benchmark: push and clone of the same committed data through a directory remote and through
# `mlstore serve` on loopback, median of --runs runs each, with the ratio http ÷ directory.
#
#   bench/http.sh [--mlstore BIN] [--work DIR] [--model-mib N] [--files N] [--runs N]
#
# Workloads (generated, seeded, deleted at the end): one random model file (default 1024 MiB, chunked) and
# N random 4 KiB files in 100 directories (default 20,000). Release build expected:
# `swift build -c release --product mlstore`.
set -euo pipefail
cd "$(dirname "$0")/.."
MLSTORE=$PWD/.build/release/mlstore
WORK=${TMPDIR:-/tmp}/mlstore-bench-http
MODEL_MIB=1024
NFILES=20000
RUNS=3
while (($#)); do
  case $1 in
    --mlstore) MLSTORE=$(realpath "$2"); shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --model-mib) MODEL_MIB=$2; shift 2 ;;
    --files) NFILES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$MLSTORE" ] || { echo "no mlstore binary at $MLSTORE; build it with swift build -c release --product mlstore" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=""
TOKEN=$(openssl rand -hex 24)
echo "$TOKEN write bench" >"$WORK/tokens"
export MLSTORE_TOKEN=$TOKEN NO_COLOR=1

stream() { head -c "$1" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$2" -iv 00000000000000000000000000000000; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

make_workspace() { # name, generator
  local ws=$WORK/$1
  mkdir -p "$ws" && (cd "$ws" && "$MLSTORE" init >/dev/null)
  "$2" "$ws"
  (cd "$ws" && "$MLSTORE" add . >/dev/null && "$MLSTORE" commit -m data --no-code --no-env >/dev/null)
}
gen_model() { stream $((MODEL_MIB << 20)) 0123456789abcdef0123456789abcdef >"$1/model.bin"; }
gen_files() {
  local per=$((NFILES / 100)) d
  stream $((NFILES * 4096)) fedcba9876543210fedcba9876543210 >"$WORK/files.blob"
  for ((i = 0; i < 100; i++)); do
    printf -v d '%s/d%03d' "$1" "$i"
    mkdir -p "$d"
    dd if="$WORK/files.blob" bs=$((per * 4096)) skip="$i" count=1 status=none | split -b 4096 -a 3 -d - "$d/f-"
  done
  rm -f "$WORK/files.blob"
}

start_server() { # store dir
  "$MLSTORE" init --bare "$1" >/dev/null
  "$MLSTORE" serve --store "$1" --port 0 --tokens "$WORK/tokens" --quiet >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!
  for _ in $(seq 1 100); do grep -q '^listening on' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
  [ -n "$URL" ] || { cat "$WORK/serve.err" >&2; exit 1; }
}
stop_server() { kill "$SERVER"; wait "$SERVER" || true; SERVER=""; }

# Deleting 20,000 files and creating as many right after makes ext4's inode allocator crawl (spec/performance.md
# §A trap for benchmarks on ext4): clones are moved aside and deleted at exit.
trash() { mkdir -p "$WORK/trash" && for p in "$@"; do [ -e "$p" ] && mv "$p" "$WORK/trash/$RANDOM$RANDOM"; done; return 0; }

bench() { # label, workspace
  local ws=$WORK/$2 dp=() dc=() hp=() hc=() t0
  for ((r = 0; r < RUNS; r++)); do
    trash "$WORK/remote" "$WORK/clone" "$WORK/srv"
    sync; t0=$(now); "$MLSTORE" -C "$ws" push "$WORK/remote" >/dev/null; dp+=("$(elapsed "$t0")")
    t0=$(now); "$MLSTORE" clone "$WORK/remote" "$WORK/clone" >/dev/null; dc+=("$(elapsed "$t0")")
    trash "$WORK/clone"
    start_server "$WORK/srv"
    sync; t0=$(now); "$MLSTORE" -C "$ws" push "$URL" >/dev/null; hp+=("$(elapsed "$t0")")
    t0=$(now); "$MLSTORE" clone "$URL" "$WORK/clone" >/dev/null; hc+=("$(elapsed "$t0")")
    cmp -s "$ws/.mlstore/refs/heads/main" "$WORK/clone/.mlstore/refs/heads/main" || { echo "http clone differs" >&2; exit 1; }
    stop_server
  done
  local mdp mdc mhp mhc
  mdp=$(printf '%s\n' "${dp[@]}" | median); mdc=$(printf '%s\n' "${dc[@]}" | median)
  mhp=$(printf '%s\n' "${hp[@]}" | median); mhc=$(printf '%s\n' "${hc[@]}" | median)
  printf '| %s | push | %.3f | %.3f | %s× |\n' "$1" "$mdp" "$mhp" "$(ratio "$mhp" "$mdp")"
  printf '| %s | clone | %.3f | %.3f | %s× |\n' "$1" "$mdc" "$mhc" "$(ratio "$mhc" "$mdc")"
}

echo "generating data in $WORK ..." >&2
make_workspace model gen_model
make_workspace files gen_files
echo "| workload | op | directory s | http s | http ÷ directory |"
echo "|---|---|---|---|---|"
bench "${MODEL_MIB} MiB model" model
bench "$NFILES × 4 KiB files" files
