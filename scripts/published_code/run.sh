#!/usr/bin/env bash
# Run the authors' published Census pipeline (zxccvdql/EMM) for one seed, with only the fixes
# it needs to import and run; append TM-1, TM-2 and EMM test AUC to a CSV. See README.md here.
#
#   scripts/published_code/run.sh SNAPSHOT_GIT_DIR RAW_DIR SEED [EPOCHS] [OUT_CSV] [WORK_DIR]
#
# SNAPSHOT_GIT_DIR: a bare git dir of github:zxccvdql/EMM (nothing is fetched here).
# RAW_DIR: folder with census-income.data(.gz) and census-income.test(.gz).
# EPOCHS: the notebooks' `epoch` (default 100, as published). OUT_CSV default:
# results/paper/published_code.csv. WORK_DIR (default /tmp/emm-published): scratch, outside any repo.
# Env: PYTHON (default /work/main/.venv/bin/python), THREADS (default 1: one core), COMMIT (default HEAD).
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,12p "$0"; exit 2; }
SNAP=$(cd "$1" && pwd); RAW=$(cd "$2" && pwd); SEED=$3; EPOCHS=${4:-100}
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
OUT_CSV=${5:-$ROOT/results/paper/published_code.csv}; WORK=${6:-/tmp/emm-published}
PY=${PYTHON:-/work/main/.venv/bin/python}; THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
COMMIT=$(git --git-dir="$SNAP" rev-parse "${COMMIT:-HEAD}")
D=$WORK/${COMMIT:0:7}-seed$SEED-ep$EPOCHS
case "$OUT_CSV" in /*) ;; *) OUT_CSV=$PWD/$OUT_CSV ;; esac
# Resumable: a seed's work folder keeps every finished model (its results file and weights), so a
# rerun of the same command after an interruption trains only what is missing. RESTART=1 starts over.
if [ "${RESTART:-0}" = 1 ] || [ ! -f "$D/.prepared" ]; then
rm -rf "$D"; mkdir -p "$D"; cd "$D"
git --git-dir="$SNAP" archive "$COMMIT" | tar -x
mkdir -p save_dir out

# ---- fix 1 (import): trainers/__init__.py imports two trainer modules the snapshot lacks.
sed -i '/ctr_trainer\|match_trainer/d' torch_rechub/trainers/__init__.py
# ---- fix 2 (import): mtl_trainer imports ESMM from models.multi_task, whose __init__ lacks it.
grep -q ESMM torch_rechub/models/multi_task/__init__.py || printf '\nfrom .esmm import ESMM\n' >> torch_rechub/models/multi_task/__init__.py
# ---- fix 3 (seed only): the 1:1 val/test split has no random_state; give it the seed.
sed -i "s/stratify=target)/stratify=target, random_state=$SEED)/" data/census-income/preprocess_census.py

# ---- preprocessing (as published), in data/census-income
for f in census-income.data census-income.test; do
  if [ -f "$RAW/$f.gz" ]; then gunzip -c "$RAW/$f.gz" > "data/census-income/$f"; else cp "$RAW/$f" data/census-income/; fi
done
(cd data/census-income && "$PY" preprocess_census.py)
touch .prepared
else
  cd "$D"; echo "resuming $D: $(grep -l '^test_result' out/result_*.txt 2>/dev/null | wc -l) of 5 models finished"
fi
done_run() { [ -f "out/result_$1.txt" ] && grep -q '^test_result' "out/result_$1.txt"; }

# Notebook code cells -> a script (the notebooks are run top to bottom, as published).
nb2py() { "$PY" - "$1" "$2" <<'PYEOF'
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
src = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
open(sys.argv[2], "w").write(f"import torch; torch.set_num_threads({int(__import__('os').environ['OMP_NUM_THREADS'])})\n" + src + "\n")
PYEOF
}
common_edits() {  # settings shared by both notebooks: seed, epochs, where results go
  sed -i -e "s/^seed = 2024/seed = $SEED/" -e "s/^epoch = 100/epoch = $EPOCHS/" \
         -e "s#path/to/save/output/#$D/out/#" -e "s#path/to/save_dir/#./save_dir/#" "$1"
}

# ---- the four trained models: single_census.ipynb with the notebook's own settings.
# name  task_select(0 income, 1 marital)  hidden dims  fused slot file (single2fus order 1..4)
run_tm() {
  local name=$1 task=$2 dims=$3 slot=$4
  if done_run "$name" && [ -f "save_dir/single_model_name_$slot.pth" ]; then echo "$name: done"; return; fi
  rm -f "out/result_$name.txt"  # the notebook appends to it: an interrupted run's epochs go first
  nb2py single_census.ipynb "tm_$name.py"
  common_edits "tm_$name.py"
  sed -i -e "s/^task_select = 0/task_select = $task/" -e "s/\"dims\": \[16,8\]}/\"dims\": $dims}/" \
         -e "s/result_{}_{}.txt'.format(model_name, task_select)/result_$name.txt'/" "tm_$name.py"
  # fix 4 (crash): single_task() indexes task_types[0]; the notebook passes the string, so
  # PredictionLayer gets 'c' and raises. Pass the list, as the multi-task notebook does.
  sed -i 's/single_task(features, task_type,/single_task(features, [task_type],/' "tm_$name.py"
  local t0=$SECONDS
  "$PY" "tm_$name.py" > "out/$name.log" 2>&1
  echo "$name $((SECONDS - t0))" >> out/seconds.txt
  cp save_dir/model_mark1_mark2.pth "save_dir/single_model_name_$slot.pth"
}
# single2fus loads file 1 -> task 0 slot 0 ([8,8]), 2 -> task 1 slot 2 ([8,8]),
# 3 -> task 0 slot 1 ([16,8]), 4 -> task 1 slot 3 ([16,8]) (multi_task_census.ipynb).
run_tm tm1_income  0 '[8,8]'  1
run_tm tm1_marital 1 '[8,8]'  2
run_tm tm2_income  0 '[16,8]' 3
run_tm tm2_marital 1 '[16,8]' 4

# ---- EMM: multi_task_census.ipynb with model_name = 'fus_moe_add' (the notebook says so).
if ! done_run emm; then
rm -f out/result_emm.txt
nb2py multi_task_census.ipynb emm.py
common_edits emm.py
sed -i "s/^model_name = 'AdaTTSp'/model_name = 'fus_moe_add'/" emm.py
# fix 5 (crash): the results file name has two {} but format() gets one argument.
sed -i "s/result_{}_{}.txt'.format(model_name)/result_emm.txt'/" emm.py
t0=$SECONDS
"$PY" emm.py > out/emm.log 2>&1
echo "emm $((SECONDS - t0))" >> out/seconds.txt
fi

# ---- collect: the last 'test_result' line of every results file -> tidy CSV rows
mkdir -p "$(dirname "$OUT_CSV")"
flock "/tmp/$(basename "$OUT_CSV").lock" "$PY" - "$D/out" "$OUT_CSV" "$COMMIT" "$SEED" "$EPOCHS" <<'PYEOF'  # seeds may run in parallel
import csv, os, re, statistics, sys
out, path, commit, seed, epochs = sys.argv[1:]
secs = dict(l.split() for l in open(os.path.join(out, "seconds.txt")))  # the last time of each
runs = {"tm1_income": ("TM-1", ["income"]), "tm1_marital": ("TM-1", ["marital"]),
        "tm2_income": ("TM-2", ["income"]), "tm2_marital": ("TM-2", ["marital"]),
        "emm": ("EMM", ["income", "marital"])}
n_train = sum(1 for _ in open(os.path.join(out, "..", "data", "census-income", "census_income_train.csv"))) - 1


def rows_per_s(name):
    """Median over epochs of tqdm's final training rate (batches/s) x rows per batch."""
    log = open(os.path.join(out, f"{name}.log")).read().replace("\r", "\n")
    rates = [(int(n), float(r)) for n, r in re.findall(r"^train: 100%.*? (\d+)/\d+ \[.*?, *([\d.]+)it/s\]", log, re.M)]
    return round(statistics.median(r * n_train / n for n, r in rates)) if rates else ""


if os.path.exists(path) and any(r["commit"] == commit and r["seed"] == seed and r["max_epochs"] == epochs
                                for r in csv.DictReader(open(path))):
    sys.exit(f"{path} already holds commit {commit[:7]} seed {seed} ({epochs} epochs): not written twice.")
rows = []
for name, (model, tasks) in runs.items():
    lines = [l.strip() for l in open(os.path.join(out, f"result_{name}.txt")) if l.strip()]
    test = [l for l in lines if l.startswith("test_result")][-1].split(", ")[1:]
    val = [[float(v) for v in l.split(", ")[1:]] for l in lines if l.startswith("epoch:")]
    means = [sum(v) / len(v) for v in val]
    best = max(range(len(means)), key=means.__getitem__)  # first best, as the trainer keeps it
    for i, task in enumerate(tasks):
        rows.append(dict(commit=commit, seed=seed, max_epochs=epochs, model=model, task=task,
                         test_auc=float(test[i]), best_val_auc=val[best][i], best_epoch=best + 1,
                         epochs_run=len(val), train_seconds=secs[name], train_rows_per_s=rows_per_s(name),
                         threads=os.environ["OMP_NUM_THREADS"],
                         split_random_state=seed, torch_seed=seed))  # what SEED set above (README: Seeds)
os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
new = not os.path.exists(path)
tmp = path + ".tmp"
old = open(path).read() if not new else ""
with open(tmp, "w", newline="") as fh:
    fh.write(old)
    w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")  # not csv's \r\n
    if new:
        w.writeheader()
    w.writerows(rows)
os.replace(tmp, path)
for r in rows:
    print(r["model"], r["task"], f"{r['test_auc']:.5f}", f"epochs {r['epochs_run']}", f"{r['train_seconds']}s",
          f"{r['train_rows_per_s']} rows/s")
PYEOF
