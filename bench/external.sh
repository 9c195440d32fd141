#!/usr/bin/env bash
# bench/external.sh - time the reference tools (openssl, cp, git, git-lfs, dvc)
# on seeded, reproducible ML-data workloads, and optionally mlstore in the same
# run, so the numbers are comparable (same machine, same data, same cache state).
#
# Workloads (full mode; --quick shrinks them):
#   model      1 GiB of AES-CTR keystream (random-ish "float32" weights)
#   model-mod  the same file with four 2.5 MiB regions overwritten; measures
#              the incremental add of version 2 and how much each store grows
#   files      20,000 files of 4 KiB in 100 directories (200 per directory)
#   csv        256 MiB of numeric CSV rows (mawk, srand(42))
# Operations per workload and tool (the "op" field of each JSON row):
#   hash (openssl), copy (cp), init, add (git: add+commit), status (unchanged
#   tree), checkout (delete the workspace copy, restore it from the store),
#   push (to a local bare repo / directory remote), clone (from that remote).
#   An mlstore binary without push/clone/commit gets rows marked "skipped".
#
# All data derives from fixed keys/seeds, so two runs on two machines hash the
# same (digests are written into the JSON).  Run with --help for the options.
# shellcheck disable=SC2016 # awk programs are single-quoted on purpose ($AWK hides that)
set -euo pipefail
export LC_ALL=C

readonly SCRIPT_NAME=${0##*/}

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [--quick] [--out FILE.json] [--work DIR] [--runs N]
                   [--mlstore PATH] [--install] [--keep]
                   [--only WORKLOADS] [--tools TOOLS]

Times reference tools on seeded workloads and writes an aligned table to
stdout and a JSON report.

  --quick          tiny workloads (whole script well under a minute)
  --out FILE       JSON report path (default: WORK/external.json)
  --work DIR       working directory (default: \${TMPDIR:-/tmp}/mlstore-external-bench)
  --runs N         timed runs per measurement; the median is reported
                   (default: 3, or 1 with --quick)
  --mlstore PATH   also time this mlstore binary (init, add, status, checkout,
                   and push/clone to a directory remote if it has them)
  --install        apt-get install missing git-lfs hyperfine time, and
                   pip install dvc into WORK/venv
  --keep           keep generated data and scratch repos (reused by the next
                   run with the same sizes)
  --only LIST      comma list of workloads: model,model-mod,files,csv
  --tools LIST     comma list of tools: openssl,cp,git,lfs,dvc,mlstore
  -h, --help       this help

Timing: each measurement's untimed setup builds a fresh directory, then the
command runs under /usr/bin/time -f '%e %M' (wall seconds, peak RSS of the
largest process).  Page cache is warm: inputs are read once before timing and
'sync' runs after every setup; timed writes are not fsync'd.  In the files
workload nothing is deleted while timings run: it is renamed into WORK/trash,
emptied at exit (ext4 skips inodes freed in the last minute or so when it
allocates new ones, so creating 20,000 files right after deleting 20,000
others runs ~10x slower and would time the file system, not the tool).
EOF
}

die() { printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
info() { printf '== %s\n' "$*" >&2; }
q() { printf '%q' "$1"; }

# ---------------------------------------------------------------- options ---
QUICK=0 INSTALL=0 KEEP=0
OUT="" RUNS="" MLSTORE=""
WORK=${TMPDIR:-/tmp}/mlstore-external-bench
ONLY=model,model-mod,files,csv
TOOLS=openssl,cp,git,lfs,dvc,mlstore

need_val() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --install) INSTALL=1 ;;
    --keep) KEEP=1 ;;
    --out) need_val "$@"; OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --work) need_val "$@"; WORK=$2; shift ;;
    --work=*) WORK=${1#*=} ;;
    --runs) need_val "$@"; RUNS=$2; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --mlstore) need_val "$@"; MLSTORE=$2; shift ;;
    --mlstore=*) MLSTORE=${1#*=} ;;
    --only) need_val "$@"; ONLY=$2; shift ;;
    --only=*) ONLY=${1#*=} ;;
    --tools) need_val "$@"; TOOLS=$2; shift ;;
    --tools=*) TOOLS=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

if ((QUICK)); then
  MODEL_BYTES=$((16 << 20)) REGION_BYTES=$((256 << 10))
  NDIRS=10 PER_DIR=20 CSV_BYTES=$((4 << 20))
  : "${RUNS:=1}"
else
  MODEL_BYTES=$((1 << 30)) REGION_BYTES=$((5 << 19)) # 2.5 MiB
  NDIRS=100 PER_DIR=200 CSV_BYTES=$((256 << 20))
  : "${RUNS:=3}"
fi
readonly FILE_BYTES=4096 NREGIONS=4 DD_BS=65536
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
for w in ${ONLY//,/ }; do
  case $w in model | model-mod | files | csv) ;; *) die "unknown workload '$w' in --only" ;; esac
done
for t in ${TOOLS//,/ }; do
  case $t in openssl | cp | git | lfs | dvc | mlstore) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
wl_on() { [[ ,$ONLY, == *,"$1",* ]]; }
tool_on() { [[ ,$TOOLS, == *,"$1",* ]]; }

[[ $OUT == "" || $OUT == /* ]] || OUT=$PWD/$OUT
if [[ -n $MLSTORE && $MLSTORE != /* ]]; then
  if [[ $MLSTORE == */* ]]; then
    MLSTORE=$PWD/$MLSTORE
  else
    MLSTORE=$(command -v -- "$MLSTORE" || printf '%s' "$PWD/$MLSTORE")
  fi
fi
mkdir -p -- "$WORK"
WORK=$(cd -- "$WORK" && pwd -P)
: "${OUT:=$WORK/external.json}"
readonly DATA=$WORK/data SCRATCH=$WORK/scratch LOGS=$WORK/logs
readonly BEFORE_FILE=$WORK/.stored-before TIME_OUT=$WORK/.time-out TRASH=$WORK/trash
mkdir -p -- "$DATA" "$SCRATCH" "$LOGS" "$TRASH" "$(dirname -- "$OUT")"
rm -rf -- "${SCRATCH:?}"/* "${TRASH:?}"/* "$LOGS"/*.log
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)

# discard PATH...: delete, or with DEFER_DELETE=1 (workloads of many small
# files) move out of the way now and delete at exit: ext4 allocates inodes
# slowly right after many were freed (see --help).  Same file system, so the
# move is a rename.  Large-file workloads delete at once (few inodes, many
# bytes: deferring would fill the disk).
DEFER_DELETE=0
discard() {
  local p t
  for p; do
    [[ -e $p || -L $p ]] || continue
    if ((DEFER_DELETE)); then
      t=$(mktemp -d -- "$TRASH/t.XXXXXX")
      mv -- "$p" "$t/"
    else
      rm -rf -- "$p"
    fi
  done
}

cleanup() {
  local rc=$?
  if ((KEEP)); then
    info "kept data in $DATA and repos in $SCRATCH"
  else
    rm -rf -- "$DATA" "$SCRATCH"
  fi
  rm -rf -- "$TRASH"
  rm -f -- "$BEFORE_FILE" "$TIME_OUT" "$TIME_OUT.gnu"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- install ---
find_dvc() {
  if [[ -x $WORK/venv/bin/dvc ]]; then
    printf '%s\n' "$WORK/venv/bin/dvc"
  else
    command -v dvc || true
  fi
}

do_install() {
  local pkgs=() sudo=()
  ((EUID == 0)) || sudo=(sudo)
  command -v openssl >/dev/null || pkgs+=(openssl)
  command -v git >/dev/null || pkgs+=(git)
  git lfs version >/dev/null 2>&1 || pkgs+=(git-lfs)
  command -v hyperfine >/dev/null || pkgs+=(hyperfine)
  [[ -x /usr/bin/time ]] || pkgs+=(time)
  command -v mawk >/dev/null || pkgs+=(mawk)
  command -v python3 >/dev/null || pkgs+=(python3 python3-venv)
  if ((${#pkgs[@]})); then
    info "installing: ${pkgs[*]}"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
  fi
  if tool_on dvc && [[ -z $(find_dvc) ]]; then
    info "creating $WORK/venv and installing dvc (takes a minute or two)"
    if ! python3 -m venv "$WORK/venv" >&2; then
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
      python3 -m venv "$WORK/venv" >&2
    fi
    "$WORK/venv/bin/pip" install -q --disable-pip-version-check dvc >&2
  fi
}
((INSTALL)) && do_install

command -v openssl >/dev/null || die "openssl is required for the seeded data (use --install)"
AWK=$(command -v mawk || command -v awk) || die "awk is required"
GNU_TIME=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null; then
  GNU_TIME=/usr/bin/time
else
  warn "GNU time not found (apt package 'time', or --install): no peak RSS, bash clock for wall time"
fi
HAVE_GIT=0 HAVE_LFS=0
command -v git >/dev/null && HAVE_GIT=1
((HAVE_GIT)) && git lfs version >/dev/null 2>&1 && HAVE_LFS=1
DVC=$(find_dvc)
if [[ -n $MLSTORE && ! -x $MLSTORE ]]; then
  warn "mlstore binary '$MLSTORE' not found or not executable: skipping mlstore"
  MLSTORE=""
fi

# Isolated, reproducible tool configuration (no user/system config leaks in).
cat >"$WORK/gitconfig" <<'EOF'
[user]
	name = mlstore-bench
	email = bench@mlstore.invalid
[init]
	defaultBranch = main
[gc]
	auto = 0
[maintenance]
	auto = false
[commit]
	gpgsign = false
EOF
export GIT_CONFIG_GLOBAL=$WORK/gitconfig GIT_CONFIG_NOSYSTEM=1
export GIT_TERMINAL_PROMPT=0 GIT_LFS_SKIP_PUSH=0
export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR=$SCRATCH/dvc-site
export MLSTORE_AUTHOR_NAME=mlstore-bench MLSTORE_AUTHOR_EMAIL=bench@mlstore.invalid

# ------------------------------------------------------------------- data ---
readonly IV=000102030405060708090a0b0c0d0e0f
readonly KEY_MODEL=6d6c73746f72652d6d6f64656c2d7631 # "mlstore-model-v1"
readonly KEY_PATCH=6d6c73746f72652d6d6f64656c2d7632 # "mlstore-model-v2"
readonly KEY_FILES=6d6c73746f72652d66696c65732d7631 # "mlstore-files-v1"
readonly CSV_SEED=42

# stream KEY NBYTES: deterministic AES-128-CTR keystream (fast, seeded).
stream() { head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$1" -iv "$IV"; }
human() {
  "$AWK" -v b="$1" 'BEGIN {
    split("B KiB MiB GiB TiB", u, " "); i = 1
    while (b >= 1024 && i < 5) { b /= 1024; i++ }
    s = (b == int(b)) ? sprintf("%d", b) : sprintf("%.1f", b); print s u[i] }'
}
region_offset() { # i -> byte offset of changed region i, 64 KiB aligned
  echo $(((2 * $1 + 1) * MODEL_BYTES / (2 * NREGIONS) / DD_BS * DD_BS))
}
sha256_file() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
sha256_tree() { # digest of the sorted "digest *path" listing; also warms the cache
  (cd -- "$(dirname -- "$1")" && find "$(basename -- "$1")" -type f -print0 | sort -z |
    xargs -0 openssl dgst -sha256 -r | openssl dgst -sha256 -r | cut -d' ' -f1)
}
warm() { find "$@" -type f -exec cat -- {} + >/dev/null; }

NFILES=$((NDIRS * PER_DIR))
declare -A DIGEST=()

gen_model() {
  local i off
  stream "$KEY_MODEL" "$MODEL_BYTES" >"$DATA/model.bin"
  cp -- "$DATA/model.bin" "$DATA/model-mod.bin"
  stream "$KEY_PATCH" $((NREGIONS * REGION_BYTES)) >"$DATA/patch.bin"
  for ((i = 0; i < NREGIONS; i++)); do
    off=$(region_offset "$i")
    dd if="$DATA/patch.bin" of="$DATA/model-mod.bin" bs=$DD_BS conv=notrunc status=none \
      skip=$((i * REGION_BYTES / DD_BS)) seek=$((off / DD_BS)) count=$((REGION_BYTES / DD_BS))
  done
  rm -f -- "$DATA/patch.bin"
}

gen_files() {
  local i d
  stream "$KEY_FILES" $((NFILES * FILE_BYTES)) >"$DATA/files.blob"
  for ((i = 0; i < NDIRS; i++)); do
    printf -v d '%s/files/d%03d' "$DATA" "$i"
    mkdir -p -- "$d"
    dd if="$DATA/files.blob" bs=$((PER_DIR * FILE_BYTES)) skip="$i" count=1 status=none |
      split -b "$FILE_BYTES" -a 3 -d --additional-suffix=.bin - "$d/shard-"
  done
  rm -f -- "$DATA/files.blob"
}

gen_csv() {
  "$AWK" -v seed="$CSV_SEED" -v limit="$CSV_BYTES" 'BEGIN {
    srand(seed); h = "id,f0,f1,f2,f3,f4,f5,f6,label"; print h; n = length(h) + 1
    for (id = 0; n < limit; id++) {
      l = sprintf("%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d", id,
        rand() * 2 - 1, rand() * 2 - 1, rand() * 2 - 1, rand() * 2 - 1,
        rand() * 2 - 1, rand() * 2 - 1, rand() * 2 - 1, int(rand() * 10))
      print l; n += length(l) + 1
    } }' >"$DATA/data.csv"
}

gen_data() { # generates what the selected workloads need; a stamp per data set
  local set stamp
  for set in model files csv; do
    case $set in
      model) wl_on model || wl_on model-mod || continue; stamp=$DATA/.stamp-model-$MODEL_BYTES-$REGION_BYTES ;;
      files) wl_on files || continue; stamp=$DATA/.stamp-files-${NDIRS}x$PER_DIR ;;
      csv) wl_on csv || continue; stamp=$DATA/.stamp-csv-$CSV_BYTES ;;
    esac
    if [[ -f $stamp ]]; then
      info "reusing seeded $set data in $DATA"
      continue
    fi
    info "generating seeded $set data in $DATA"
    case $set in
      model) rm -f -- "$DATA"/.stamp-model-* "$DATA"/model*.bin ;;
      files) rm -rf -- "$DATA"/.stamp-files-* "$DATA/files" ;;
      csv) rm -f -- "$DATA"/.stamp-csv-* "$DATA/data.csv" ;;
    esac
    "gen_$set"
    sync
    : >"$stamp"
  done
  # Digests make the workloads checkable across machines; they also read
  # every input once, so the page cache is warm before any timing.
  if wl_on model || wl_on model-mod; then
    DIGEST[model]=$(sha256_file "$DATA/model.bin")
    DIGEST[model-mod]=$(sha256_file "$DATA/model-mod.bin")
  fi
  if wl_on files; then DIGEST[files]=$(sha256_tree "$DATA/files"); fi
  if wl_on csv; then DIGEST[csv]=$(sha256_file "$DATA/data.csv"); fi
  return 0
}

# ------------------------------------------------------------ measurement ---
# fields joined by US (0x1f):
#   workload tool runs median_s peak_kib stored_bytes status times gnu_times
#   note op tool_key added_bytes
# OP and TK (set by m) name the operation and the tool family of the row.
ROWS=()
SEQ=0 LAST_DIR="" CUR="" OP="" TK=""

du_b() { if [[ -e $1 ]]; then du -sb -- "$1" | cut -f1; else echo 0; fi; }
median() { sort -g | "$AWK" '{ a[NR] = $1 } END {
  if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
slug() { printf '%s' "$1" | tr -c 'A-Za-z0-9.-' '_'; }

run_timed() { # DIR CMD: run CMD in DIR, write "wall_s peak_kib gnu_e_s" to TIME_OUT
  # Wall time comes from the shell clock (microseconds; GNU time's %e only has
  # 10 ms resolution, too coarse for status commands); peak RSS from GNU %M.
  local t0 t1 rc=0 gnu="- -"
  cd -- "$1" || return
  t0=$EPOCHREALTIME
  if [[ -n $GNU_TIME ]]; then
    "$GNU_TIME" -f '%e %M' -o "$TIME_OUT.gnu" bash -e -o pipefail -c "$2" || rc=$?
  else
    bash -e -o pipefail -c "$2" || rc=$?
  fi
  t1=$EPOCHREALTIME
  # GNU time prefixes a status line on failure; the numbers are the last line.
  [[ -z $GNU_TIME ]] || gnu=$(tail -n 1 "$TIME_OUT.gnu")
  "$AWK" -v a="$t0" -v b="$t1" -v g="$gnu" 'BEGIN {
    split(g, x, " "); printf "%.3f %s %s\n", b - a, x[2], x[1] }' >"$TIME_OUT"
  return "$rc"
}

add_row() { # workload tool runs median peak stored status times gtimes note [added]
  local IFS=$'\x1f' # not whitespace, so empty fields survive 'read'
  ROWS+=("$1$IFS$2$IFS$3$IFS$4$IFS$5$IFS$6$IFS$7$IFS$8$IFS$9$IFS${10}$IFS$OP$IFS$TK$IFS${11:-}")
}

# measure WORKLOAD TOOL SETUP CMD [STORED_PATH [NOTE]]
#   SETUP non-empty: every run gets a fresh empty directory; SETUP DIR runs
#   there untimed (then sync), then CMD is timed there.  Only the last run's
#   directory is kept (LAST_DIR).  SETUP may write the store size before the
#   timed step to BEFORE_FILE; the row then notes how much the store grew.
#   SETUP empty: CMD runs in CUR after one untimed warm-up run.
#   SETUP @FUNC: CMD runs in CUR; FUNC CUR runs there untimed (then sync)
#   before every run, e.g. to delete what CMD restores.
#   STORED_PATH (relative to the run directory) is du -sb'd after the last run.
# m OP TOOL_KEY WORKLOAD TOOL ...: measure with the row's op and tool family.
m() { OP=$1 TK=$2; shift 2; measure "$@"; }
measure() {
  local wl=$1 tool=$2 setup=$3 cmd=$4 stored_path=${5:-} extra=${6:-}
  local r rc e m g dir="" prev="" log name peak="" status=ok note="" stored="" med="" before
  local added="" inplace=0
  local times=() gtimes=()
  name=$(slug "$wl-$tool")
  log=$LOGS/$name.log
  rm -f -- "$BEFORE_FILE"
  info "$wl: $tool"
  printf '$ %s\n' "$cmd" >"$log"
  if [[ $setup == @* ]]; then
    inplace=1 setup=${setup#@} dir=$CUR
  elif [[ -z $setup ]]; then
    dir=$CUR
    (run_timed "$dir" "$cmd") >>"$log" 2>&1 || true
  fi
  for ((r = 1; r <= RUNS; r++)); do
    if ((inplace)); then
      set +e
      (
        set -e
        cd -- "$dir"
        "$setup" "$dir"
      ) >>"$log" 2>&1
      rc=$?
      set -e
      if ((rc != 0)); then
        status=failed note="setup failed (exit $rc), see $log"
        break
      fi
      sync
    elif [[ -n $setup ]]; then
      prev=$dir
      dir=$SCRATCH/$((++SEQ))-$name
      mkdir -p -- "$dir"
      set +e
      (
        set -e
        cd -- "$dir"
        "$setup" "$dir"
      ) >>"$log" 2>&1
      rc=$?
      set -e
      [[ -z $prev ]] || discard "$prev"
      if ((rc != 0)); then
        status=failed note="setup failed (exit $rc), see $log"
        break
      fi
      sync
    fi
    printf -- '--- run %d\n' "$r" >>"$log"
    set +e
    (run_timed "$dir" "$cmd") >>"$log" 2>&1
    rc=$?
    set -e
    if ((rc != 0)); then
      status=failed note="exit $rc, see $log"
      break
    fi
    read -r e m g <"$TIME_OUT"
    times+=("$e")
    [[ $g == - ]] || gtimes+=("$g")
    if [[ $m =~ ^[0-9]+$ ]] && [[ -z $peak || $m -gt $peak ]]; then peak=$m; fi
  done
  if [[ $status == ok ]]; then
    med=$(printf '%s\n' "${times[@]}" | median)
    if [[ -n $stored_path ]]; then
      stored=$(du_b "$dir/$stored_path")
      if [[ -f $BEFORE_FILE ]]; then
        before=$(<"$BEFORE_FILE")
        added=$((stored - before))
        note=$("$AWK" -v a="$before" -v b="$stored" -v f="$MODEL_BYTES" 'BEGIN {
          printf "v1 store %.1f MiB; v2 added %.1f MiB = %.1f%% of the file", a / 1048576, (b - a) / 1048576, (b - a) * 100 / f }')
      fi
    fi
    note=$extra${note:+${extra:+; }$note}
  else
    warn "$wl / $tool failed: $(tail -n 3 "$log" | tr '\n' ' ')"
  fi
  LAST_DIR=$dir
  add_row "$wl" "$tool" "${#times[@]}" "$med" "$peak" "$stored" "$status" "$(
    IFS=,
    printf '%s' "${times[*]}"
  )" "$(
    IFS=,
    printf '%s' "${gtimes[*]}"
  )" "$note" "$added"
}

unavailable() { # WORKLOAD TOOL NOTE
  OP=all TK=${2/git lfs/lfs}
  add_row "$1" "$2" 0 "" "" "" unavailable "" "" "$3"
}
# skipped OP TOOL_KEY WORKLOAD TOOL NOTE: a row for something not measurable yet.
skipped() { OP=$1 TK=$2; add_row "$3" "$4" 0 "" "" "" skipped "" "" "$5"; }
reset_scratch() { ((KEEP)) || discard "${SCRATCH:?}"/*; } # --keep keeps every repo

# --------------------------------------------------------- setup helpers ---
# Globals for the current workload: W_SRC (data), W_NAME (name in the repo),
# W_PAT (git lfs track pattern), W_MOD (version 2 of the model).
place_data() { cp -r -- "$W_SRC" "$W_NAME"; }
replace_v2() { rm -f -- "$W_NAME" && cp -- "$W_MOD" "$W_NAME"; }
setup_empty() { :; }
setup_git() { git init -q . && place_data; }
setup_git_v2() {
  setup_git
  git add -A && git commit -q -m v1
  du_b .git >"$BEFORE_FILE"
  replace_v2
}
setup_lfs() {
  git init -q .
  git lfs install --local >/dev/null
  git lfs track "$W_PAT" >/dev/null
  git add .gitattributes && git commit -q -m 'track with lfs'
  place_data
}
setup_lfs_v2() {
  setup_lfs
  git add -A && git commit -q -m v1
  du_b .git/lfs >"$BEFORE_FILE"
  replace_v2
}
setup_bare() { git init -q --bare remote.git; }
setup_dvc() {
  git init -q .
  "$DVC" init -q
  "$DVC" config core.analytics false
  "$DVC" config core.check_update false 2>/dev/null || true
  place_data
}
setup_dvc_v2() {
  setup_dvc
  "$DVC" add -q "$W_NAME"
  du_b .dvc/cache >"$BEFORE_FILE"
  replace_v2
}
setup_dvc_remote() {
  mkdir -p remote
  (cd -- "$DVC_REPO" && "$DVC" remote add -f -d bench "$1/remote")
}
setup_dvc_clone() { # a fresh repo with DVC_REPO's metadata and remote, empty cache
  git init -q .
  cp -r -- "$DVC_REPO/.dvc" .dvc
  rm -rf -- .dvc/cache .dvc/tmp
  cp -- "$DVC_REPO/$W_NAME.dvc" .
}
prep_delete() { discard "$W_NAME"; } # before each timed checkout
setup_ml() { place_data && "$MLSTORE" init; }
ml_has() { "$MLSTORE" "$1" --help >/dev/null 2>&1; } # does this binary have command $1?
setup_ml_v2() {
  setup_ml
  "$MLSTORE" add "$W_NAME"
  du_b .mlstore >"$BEFORE_FILE"
  replace_v2
}

# -------------------------------------------------------------- workloads ---
declare -A LABEL=(
  [model]="model-$(human "$MODEL_BYTES")"
  [model-mod]="model-$(human "$MODEL_BYTES")-v2"
  [files]="files-${NFILES}x$(human "$FILE_BYTES")"
  [csv]="csv-$(human "$CSV_BYTES")"
)
declare -A WKEY=() # label -> workload key
for w in "${!LABEL[@]}"; do WKEY[${LABEL[$w]}]=$w; done

bench_one() { # model | files | csv
  local wl=$1 label=${LABEL[$1]} cmd name
  case $wl in
    model) W_SRC=$DATA/model.bin W_NAME=model.bin W_PAT='*.bin' ;;
    files) W_SRC=$DATA/files W_NAME=files W_PAT='*.bin' ;;
    csv) W_SRC=$DATA/data.csv W_NAME=data.csv W_PAT='*.csv' ;;
  esac
  name=$(q "$W_NAME")
  warm "$W_SRC"

  if tool_on openssl; then
    CUR=$DATA
    if [[ -d $W_SRC ]]; then
      m hash openssl "$label" "openssl dgst -sha256 (find -exec +)" "" \
        "find $name -type f -exec openssl dgst -sha256 {} + >/dev/null"
    else
      m hash openssl "$label" "openssl dgst -sha256" "" "openssl dgst -sha256 $name"
    fi
  fi

  if tool_on cp; then
    if [[ -d $W_SRC ]]; then
      m copy cp "$label" "cp -r" setup_empty "cp -r $(q "$W_SRC") copy" copy
    else
      m copy cp "$label" "cp" setup_empty "cp $(q "$W_SRC") copy" copy
    fi
    reset_scratch
  fi

  if tool_on git; then
    if ((HAVE_GIT)); then
      m add git "$label" "git add+commit" setup_git "git add -A && git commit -q -m data" .git
      GIT_REPO=$LAST_DIR CUR=$LAST_DIR
      m status git "$label" "git status (unchanged)" "" "git status"
      m checkout git "$label" "git checkout -- (restore deleted)" @prep_delete "git checkout -- $name"
      m push git "$label" "git push (local bare)" setup_bare \
        "git -C $(q "$GIT_REPO") push -q \"\$PWD/remote.git\" HEAD:refs/heads/main" remote.git
      GIT_REMOTE=$LAST_DIR/remote.git
      m clone git "$label" "git clone (file://)" setup_empty \
        "git clone -q $(q "file://$GIT_REMOTE") clone" clone
      reset_scratch
    else
      unavailable "$label" git "git not installed"
    fi
  fi

  if tool_on lfs; then
    if ((HAVE_LFS)); then
      m add lfs "$label" "git lfs add+commit ($W_PAT)" setup_lfs "git add -A && git commit -q -m data" .git/lfs
      LFS_REPO=$LAST_DIR CUR=$LAST_DIR
      m status lfs "$label" "git status (lfs, unchanged)" "" "git status"
      m checkout lfs "$label" "git checkout -- (lfs smudge)" @prep_delete "git checkout -- $name"
      m push lfs "$label" "git lfs push (local bare)" setup_bare \
        "git -C $(q "$LFS_REPO") push -q \"file://\$PWD/remote.git\" HEAD:refs/heads/main" remote.git \
        "file:// remote: git-lfs hardlinks objects, no data copy"
      LFS_REMOTE=$LAST_DIR/remote.git
      # The isolated gitconfig has no lfs filter; give clone the one 'git lfs install' writes.
      m clone lfs "$label" "git lfs clone (file://)" setup_empty \
        "git -c filter.lfs.process='git-lfs filter-process' -c filter.lfs.smudge='git-lfs smudge -- %f' -c filter.lfs.clean='git-lfs clean -- %f' -c filter.lfs.required=true clone -q $(q "file://$LFS_REMOTE") clone" clone
      reset_scratch
    else
      unavailable "$label" "git lfs" "git-lfs not installed (--install)"
    fi
  fi

  if tool_on dvc; then
    if [[ -n $DVC ]]; then
      cmd=$(q "$DVC")
      m add dvc "$label" "dvc add" setup_dvc "$cmd add -q $name" .dvc/cache
      DVC_REPO=$LAST_DIR CUR=$LAST_DIR
      m status dvc "$label" "dvc status (unchanged)" "" "$cmd status"
      m checkout dvc "$label" "dvc checkout (restore deleted)" @prep_delete "$cmd checkout -q"
      m push dvc "$label" "dvc push (local remote)" setup_dvc_remote \
        "cd $(q "$DVC_REPO") && $cmd push -q" remote
      m clone dvc "$label" "dvc pull (fresh repo)" setup_dvc_clone "$cmd pull -q" . \
        "repo metadata copied untimed; pull = fetch to cache + checkout"
      reset_scratch
    else
      unavailable "$label" dvc "dvc not installed (--install)"
    fi
  fi

  if tool_on mlstore && [[ -n $MLSTORE ]]; then
    cmd=$(q "$MLSTORE")
    m init mlstore "$label" "mlstore init" place_data "$cmd init"
    m add mlstore "$label" "mlstore add" setup_ml "$cmd add $name" .mlstore
    CUR=$LAST_DIR
    # git's rows include the commit; commit here too (untimed), so status
    # reports a clean workspace and push has something to send.
    committed=0
    if ml_has commit && (cd -- "$CUR" && "$MLSTORE" commit -m data --no-code --no-env) >>"$LOGS/$(slug "$label-mlstore-commit").log" 2>&1; then
      committed=1
    fi
    m status mlstore "$label" "mlstore status (unchanged)" "" "$cmd status"
    m checkout mlstore "$label" "mlstore checkout -- (restore deleted)" @prep_delete "$cmd checkout -- $name"
    # Binaries without push/clone/commit get skipped rows.
    if ((committed)) && ml_has push && ml_has clone; then
      ML_REPO=$CUR
      m push mlstore "$label" "mlstore push (directory remote)" setup_empty \
        "$cmd -C $(q "$ML_REPO") push \"\$PWD/remote\"" remote
      ML_REMOTE=$LAST_DIR/remote
      m clone mlstore "$label" "mlstore clone (directory remote)" setup_empty \
        "$cmd clone $(q "$ML_REMOTE") clone" clone
    else
      skipped push mlstore "$label" "mlstore push (directory remote)" "mlstore push/clone: not implemented in this binary"
      skipped clone mlstore "$label" "mlstore clone (directory remote)" "mlstore push/clone: not implemented in this binary"
    fi
    reset_scratch
  fi
}

bench_v2() { # add version 2 of the model on top of a store holding version 1
  local label=${LABEL[model-mod]} cmd
  W_SRC=$DATA/model.bin W_MOD=$DATA/model-mod.bin W_NAME=model.bin W_PAT='*.bin'
  warm "$W_SRC" "$W_MOD"
  if tool_on git; then
    if ((HAVE_GIT)); then
      m add git "$label" "git add+commit v2" setup_git_v2 "git add -A && git commit -q -m v2" .git
      reset_scratch
    else
      unavailable "$label" git "git not installed"
    fi
  fi
  if tool_on lfs; then
    if ((HAVE_LFS)); then
      m add lfs "$label" "git lfs add+commit v2" setup_lfs_v2 "git add -A && git commit -q -m v2" .git/lfs
      reset_scratch
    else
      unavailable "$label" "git lfs" "git-lfs not installed (--install)"
    fi
  fi
  if tool_on dvc; then
    if [[ -n $DVC ]]; then
      cmd=$(q "$DVC")
      m add dvc "$label" "dvc add v2" setup_dvc_v2 "$cmd add -q model.bin" .dvc/cache
      reset_scratch
    else
      unavailable "$label" dvc "dvc not installed (--install)"
    fi
  fi
  if tool_on mlstore && [[ -n $MLSTORE ]]; then
    cmd=$(q "$MLSTORE")
    m add mlstore "$label" "mlstore add v2" setup_ml_v2 "$cmd add model.bin" .mlstore
    reset_scratch
  fi
}

# ----------------------------------------------------------------- report ---
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  s=$(printf '%s' "$s" | tr -d '\000-\037')
  printf '"%s"' "$s"
}
json_num() { if [[ -n $1 ]]; then printf '%s' "$1"; else printf 'null'; fi; }
first_line() { # CMD... -> its first output line, or "unavailable"
  local out
  out=$("$@" 2>&1 | sed -n 1p) && [[ -n $out ]] || out=unavailable
  printf '%s' "$out"
}
peak_mib() { [[ -z $1 ]] || "$AWK" -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

print_table() {
  local fmt='%-20s %-36s %4s %10s %9s %14s %10s  %s\n' row
  local wl tool runs med peak stored status times gtimes note op tk added
  # shellcheck disable=SC2059 # fmt is a constant
  printf "$fmt" WORKLOAD TOOL RUNS MEDIAN_S PEAK_MIB STORED_BYTES STORED NOTE
  for row in "${ROWS[@]}"; do
    IFS=$'\x1f' read -r wl tool runs med peak stored status times gtimes note op tk added <<<"$row"
    [[ $status == ok ]] || { note="$status${note:+: $note}"; med=-; }
    # shellcheck disable=SC2059
    printf "$fmt" "$wl" "$tool" "$runs" "${med:--}" "$(peak_mib "$peak")" "${stored:--}" \
      "$([[ -n $stored ]] && human "$stored" || echo -)" "$note"
  done
}

write_json() {
  local row wl tool runs med peak stored status times gtimes note op tk added sep="" w t i
  local cpu kernel mem fs os
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
  kernel=$(uname -srm)
  mem=$("$AWK" '/^MemTotal:/ { print $2 }' /proc/meminfo)
  fs=$(df -PT -- "$WORK" | "$AWK" 'NR == 2 { print $2 }')
  # shellcheck disable=SC1091
  os=$(. /etc/os-release 2>/dev/null && printf '%s' "${PRETTY_NAME:-}") || os=""
  {
    printf '{\n'
    printf '  "generator": "bench/external.sh",\n'
    printf '  "date": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '  "mode": %s,\n' "$(json_str "$( ((QUICK)) && echo quick || echo full)")"
    printf '  "runs": %d,\n' "$RUNS"
    printf '  "statistic": "median wall seconds over runs (shell clock around the timed process; GNU time %%e kept as gnu_time_e_s); peak RSS = max over runs of the largest process (GNU time %%M)",\n'
    printf '  "cache": "warm: inputs read once before timing, sync after each untimed setup, timed writes not fsynced",\n'
    printf '  "loadavg": {"start": %s, "end": %s},\n' "$(json_str "$LOADAVG_START")" "$(json_str "$LOADAVG_END")"
    printf '  "machine": {"nproc": %d, "cpu_model": %s, "kernel": %s, "os": %s, "mem_total_kib": %s, "work_fs": %s},\n' \
      "$(nproc)" "$(json_str "$cpu")" "$(json_str "$kernel")" "$(json_str "$os")" "$(json_num "$mem")" "$(json_str "$fs")"
    printf '  "versions": {\n'
    printf '    "openssl": %s,\n' "$(json_str "$(first_line openssl version)")"
    printf '    "git": %s,\n' "$(json_str "$(first_line git --version)")"
    printf '    "git-lfs": %s,\n' "$(json_str "$(first_line git lfs version)")"
    printf '    "dvc": %s,\n' "$(json_str "$(if [[ -n $DVC ]]; then first_line "$DVC" --version; else echo unavailable; fi)")"
    printf '    "hyperfine": %s,\n' "$(json_str "$(first_line hyperfine --version)")"
    printf '    "cp": %s,\n' "$(json_str "$(first_line cp --version)")"
    printf '    "time": %s,\n' "$(json_str "$(if [[ -n $GNU_TIME ]]; then first_line "$GNU_TIME" --version; else echo unavailable; fi)")"
    printf '    "awk": %s,\n' "$(json_str "$(first_line "$AWK" -W version)")"
    printf '    "mlstore": %s\n' "$(json_str "$(if [[ -n $MLSTORE ]]; then first_line timeout 10 "$MLSTORE" --version; else echo "not given"; fi)")"
    printf '  },\n'
    printf '  "workloads": {\n'
    sep=""
    for w in model model-mod files csv; do
      wl_on "$w" || continue
      printf '%s    %s: {"label": %s, ' "$sep" "$(json_str "$w")" "$(json_str "${LABEL[$w]}")"
      case $w in
        model) printf '"bytes": %d, "source": "AES-128-CTR keystream, key %s iv %s"' "$MODEL_BYTES" "$KEY_MODEL" "$IV" ;;
        model-mod)
          printf '"bytes": %d, "regions": %d, "region_bytes": %d, "offsets": [' "$MODEL_BYTES" "$NREGIONS" "$REGION_BYTES"
          for ((i = 0; i < NREGIONS; i++)); do
            printf '%s%d' "$([[ $i -gt 0 ]] && echo ', ')" "$(region_offset "$i")"
          done
          printf '], "source": "model with regions from AES-128-CTR keystream, key %s"' "$KEY_PATCH"
          ;;
        files) printf '"files": %d, "dirs": %d, "file_bytes": %d, "bytes": %d, "source": "AES-128-CTR keystream, key %s, split in order"' \
          "$NFILES" "$NDIRS" "$FILE_BYTES" $((NFILES * FILE_BYTES)) "$KEY_FILES" ;;
        csv) printf '"bytes": %d, "source": "awk srand(%d), 9 numeric columns"' "$(stat -c %s "$DATA/data.csv")" "$CSV_SEED" ;;
      esac
      printf ', "sha256": %s}' "$(json_str "${DIGEST[$w]:-}")"
      sep=$',\n'
    done
    printf '\n  },\n'
    printf '  "rows": [\n'
    sep=""
    for row in "${ROWS[@]}"; do
      IFS=$'\x1f' read -r wl tool runs med peak stored status times gtimes note op tk added <<<"$row"
      printf '%s    {"workload": %s, "workload_key": %s, "op": %s, "tool_key": %s, "tool": %s, "status": %s, "runs": %d, "median_s": %s, "times_s": [%s], "gnu_time_e_s": [%s], "peak_rss_mib": %s, "stored_bytes": %s, "added_bytes": %s, "note": %s}' \
        "$sep" "$(json_str "$wl")" "$(json_str "${WKEY[$wl]:-}")" "$(json_str "$op")" "$(json_str "$tk")" "$(json_str "$tool")" "$(json_str "$status")" "$runs" \
        "$(json_num "$med")" "${times//,/, }" "${gtimes//,/, }" "$(json_num "$(peak_mib "$peak")")" "$(json_num "$stored")" "$(json_num "$added")" "$(json_str "$note")"
      sep=$',\n'
    done
    printf '\n  ]\n}\n'
  } >"$OUT.tmp"
  mv -f -- "$OUT.tmp" "$OUT"
}

# ------------------------------------------------------------------- main ---
START=$SECONDS
info "mode: $( ((QUICK)) && echo quick || echo full), runs: $RUNS, work: $WORK"
((HAVE_GIT)) || warn "git not found: git rows skipped"
((HAVE_LFS)) || ! tool_on lfs || warn "git-lfs not found: lfs rows skipped (use --install)"
[[ -n $DVC ]] || ! tool_on dvc || warn "dvc not found: dvc rows skipped (use --install)"
gen_data
for w in model model-mod files csv; do
  wl_on "$w" || continue
  DEFER_DELETE=0
  [[ $w == files ]] && DEFER_DELETE=1
  case $w in
    model-mod) bench_v2 ;;
    *) bench_one "$w" ;;
  esac
done
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)
write_json

printf '\n# external tools, %s mode, %d run(s) per row, median wall s; page cache warm (inputs read once before timing)\n' \
  "$( ((QUICK)) && echo quick || echo full)" "$RUNS"
printf '# %s, %s cores, %s\n\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)" "$(nproc)" "$(uname -r)"
print_table
printf '\nJSON: %s  (total %ds)\n' "$OUT" $((SECONDS - START))
