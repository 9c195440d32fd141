#!/usr/bin/env bash
# Builds mlstore (release) and runs a short end-to-end demo in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
echo "== building mlstore (release)"
swift build -c release --package-path "$here" --product mlstore 2>&1 | tail -1
mlstore="$(swift build -c release --package-path "$here" --show-bin-path)/mlstore"
demo="$(mktemp -d /tmp/mlstore-demo-XXXXXX)"
trap 'rm -rf "$demo"' EXIT
cd "$demo"
run() { echo; echo "\$ mlstore $*"; "$mlstore" "$@"; }

echo "== demo workspace: $demo"
mkdir -p data
python3 - <<'PY'
import random, struct
random.seed(7)
with open("data/train.csv", "w") as f:
    f.write("x1,x2,label\n")
    for _ in range(50000):
        a, b = random.random(), random.random()
        f.write(f"{a:.6f},{b:.6f},{int(a + b > 1)}\n")
with open("model.bin", "wb") as f:   # 8 MiB of float32 "weights"
    f.write(struct.pack("<2097152f", *(random.gauss(0, 0.02) for _ in range(2097152))))
PY
run init
run add data model.bin
run status
tree=$("$mlstore" write-tree)
echo; echo "\$ mlstore write-tree"; echo "$tree"
run ls-tree -r "$tree"

echo; echo "== fine-tune: rewrite 256 KiB in the middle of the model and add it again"
python3 -c "
import os, random
random.seed(8)
with open('model.bin', 'r+b') as f:
    f.seek(4 << 20); f.write(os.urandom(256 << 10))"
run status
run add model.bin

echo; echo "== lose the workspace files, then restore them from the tree"
rm -rf data model.bin
run checkout "$tree"
run status
run fsck
echo; echo "demo finished OK"
