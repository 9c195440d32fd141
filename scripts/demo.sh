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
run() { echo; printf '$ mlstore'; printf ' %q' "$@"; echo; "$mlstore" "$@"; }

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
export MLSTORE_AUTHOR_NAME="Demo User" MLSTORE_AUTHOR_EMAIL="demo@example.com"
run init
run add data
run commit -m "import training data" --output data --no-env
run add model.bin
run status
printf 'lr: 0.01\nepochs: 5\n' > params.yaml
echo '{"acc": 0.87, "loss": [0.9, 0.6, 0.45, 0.41]}' > metrics.json
run commit -m "baseline model" --input data --output model.bin --params params.yaml --metrics metrics.json \
    --command "python train.py --lr 0.01" --no-env
tree=$("$mlstore" write-tree)
run ls-tree -r HEAD

echo; echo "== fine-tune: rewrite 256 KiB in the middle of the model and add it again"
python3 -c "
import os, random
random.seed(8)
with open('model.bin', 'r+b') as f:
    f.seek(4 << 20); f.write(os.urandom(256 << 10))"
run status
run add model.bin
echo '{"acc": 0.91, "loss": [0.9, 0.5, 0.35, 0.3]}' > metrics.json
run commit -m "fine-tuned model" --input data --output model.bin --params params.yaml --param lr=0.005 \
    --metrics metrics.json --no-env
run tag v2
run log --oneline --graph
run diff HEAD~1 HEAD
run promote fraud HEAD~1 --stage production -m "first release"
run promote fraud v2 --stage production -m "better accuracy" --require 'metrics.acc>=0.9'
run rollback fraud --stage production -m "latency regression"
run stage log fraud
run lineage model.bin --up

echo; echo "== lose the workspace files, then restore the production model's snapshot"
rm -rf data model.bin
run checkout fraud@production
run status
run fsck

echo; echo "== share: push to a shared directory remote, clone it elsewhere"
run remote add origin "$demo/shared.mlstore"
run push origin --all
cd "$demo" && run clone shared.mlstore colleague && cd colleague
run stage list
run log --oneline

echo; echo "== a real pipeline: the fixture ML project (mlstore.yaml, params.yaml, standard-library Python)"
cp -r "$here/fixtures/mlproject" "$demo/project" && cd "$demo/project"
git init -q -b main . && git add . && git -c user.name=Demo -c user.email=demo@example.com commit -qm "fixture project"
run init
run dag
run repro -j 2 --no-env
run repro --no-env
sed -i 's/lr: 0.5/lr: 0.3/' params.yaml
run repro --no-env
sed -i 's/lr: 0.3/lr: 0.5/' params.yaml
run repro --no-env
run lineage model.json --up
run run --name "train (recorded run)" --input data/train.csv --input data/test.csv --output model.json \
    --params params.yaml --metrics metrics.json --no-env -- python3 train.py
run reproduce HEAD

echo; echo "== a team server: mlstore serve (HTTP remote + web UI), push with a write token, clone read-only"
cd "$demo" && run init --bare server.mlstore
write_token="$(openssl rand -hex 24)"; read_token="$(openssl rand -hex 24)"
printf '%s write demo\n%s read guest\n' "$write_token" "$read_token" > tokens
"$mlstore" serve --store server.mlstore --port 0 --tokens tokens --quiet > serve.out 2> serve.err &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$demo"' EXIT
for _ in $(seq 1 100); do grep -q '^listening on' serve.out 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' serve.out)"
echo "server: $url"
cd "$demo/project" && run remote add team "$url"
echo "(without a token the push is refused, exit 9:)"; run push team || true
MLSTORE_TOKEN="$write_token" run push team --all
cd "$demo" && MLSTORE_TOKEN="$read_token" run clone "$url" from-server
python3 - "$url" "$read_token" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/", headers={"Cookie": "mlstore_token=" + sys.argv[2]})
page = urllib.request.urlopen(req).read().decode()
print("web UI: the runs page lists", page.count('class="run-row"'), "runs")
PY
kill "$server"; wait "$server" 2>/dev/null || true
echo; echo "demo finished OK"
