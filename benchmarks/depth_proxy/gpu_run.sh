#!/usr/bin/env bash
# The depth proxy benchmark on one GPU, in one command (ends within ~7.5 minutes on an H100):
#
#   bash benchmarks/depth_proxy/gpu_run.sh          # from the repository root
#
#  1. installs depthnas (pip -e, no deps, no index; else a PYTHONPATH tree as in
#     benchmarks/gpu_check.sh) and checks the imports the scripts need;
#  2. build_table.py: 60 V1-sync + 30 V2-sync architectures x 2 seeds, 12 training
#     processes, no training started after TABLE_BUDGET s (in-flight ones get
#     TABLE_GRACE s more);
#  3. ranking.py: SPOS vs SPOS + landmarks, seeds 0 1 2, in what is left of TOTAL_BUDGET.
#
# Writes to $OUT (default ./out), flat, 7 files: gpu_run.log, build_table.log, table.json,
# trainings.jsonl, ranking.log, ranking.json, ranking.md. Work files (rendered data,
# super-net run folders) go to $WORK (default /tmp/depth_proxy_work). Rerunning with the
# same $WORK resumes the table (trainings.jsonl) instead of starting over; a fresh $WORK
# starts from the committed benchmarks/depth_proxy/trainings.jsonl (preset gpu).
#
# Every setting is an environment variable. A CPU smoke test of this very script:
#   SKIP_INSTALL=1 PYTHON=.venv/bin/python PRESET=cpu V1=6 V2=2 WORKERS=2 TABLE_BUDGET=40 \
#   SEEDS=0 NUM_LANDMARKS=3 RANK_EPOCHS=2 RANK_ARGS="--calib-batches 1 --warmup-s 2" \
#   OUT=/tmp/dp_out WORK=/tmp/dp_work bash benchmarks/depth_proxy/gpu_run.sh
set -uo pipefail
START=$(date +%s)
OUT=${OUT:-$PWD/out}
WORK=${WORK:-/tmp/depth_proxy_work}
PY=${PYTHON:-python3}
PRESET=${PRESET:-gpu}
V1=${V1:-60}
V2=${V2:-30}
WORKERS=${WORKERS:-12}
TOTAL_BUDGET=${TOTAL_BUDGET:-450}     # seconds for the whole script (hard stops end it by ~+15 s)
TABLE_BUDGET=${TABLE_BUDGET:-250}     # no new stand-alone training after this (from the table's start)
TABLE_GRACE=${TABLE_GRACE:-25}
RANK_BUDGET=${RANK_BUDGET:-150}       # at most; less if the table ran late; 0: table only
SPACES=${SPACES:-v1-sync}             # "v1-sync v2-sync" for both rows of Table 4 (halves the epochs)
SEEDS=${SEEDS:-0 1 2}
NUM_LANDMARKS=${NUM_LANDMARKS:-10}
RANK_EPOCHS=${RANK_EPOCHS:-34}        # requested super-net epochs (x44 steps); the budget may cut it
TABLE_ARGS=${TABLE_ARGS:-}
for name in V1 V2 WORKERS TOTAL_BUDGET TABLE_BUDGET TABLE_GRACE RANK_BUDGET RANK_EPOCHS; do
    case ${!name} in ''|*[!0-9]*)  # bash arithmetic is whole numbers: 300.5 would stop the script
        echo "gpu_run.sh: $name must be a whole number, got '${!name}'" >&2; exit 2;; esac
done
RANK_ARGS=${RANK_ARGS:-}
mkdir -p "$OUT" "$WORK"
# an earlier run's outputs must not pass for this one's (the table is rebuilt from
# $WORK/trainings.jsonl; a build that failed before writing left the old table to rank)
rm -f "$OUT/table.json" "$OUT/ranking.json" "$OUT/ranking.md" "$OUT/ranking.log"
LOG="$OUT/gpu_run.log"
: > "$LOG"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=Agg
# `python -` puts the working folder first on sys.path, where the checkout's depthnas/
# (without spaces/ and datasets/) would hide the installed or laid-out package.
export PYTHONSAFEPATH=1

say() { echo "== $(date +%H:%M:%S) [+$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
elapsed() { echo $(( $(date +%s) - START )); }
# A step stopped by its `timeout` (124, or 137 after -k) exits 3 instead: the device tool
# reads 124/137 as "the whole call ran out of time", though the files written up to the
# stop are all there and the script carried on.
stopped_is_3() {
    if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then
        say "$2 overran its own time budget and was stopped; what it wrote is kept (exit 3)" >&2
        echo 3
    else
        echo "$1"
    fi
}

# ---- 1. depthnas ------------------------------------------------------------------------------
if [ -z "${SKIP_INSTALL:-}" ]; then
    say "pip install --no-deps --no-build-isolation --no-index -e ."
    if ! $PY -m pip install -q --no-deps --no-build-isolation --no-index -e . >> "$LOG" 2>&1; then
        say "pip install failed (see log); using a PYTHONPATH tree instead"
        PKG=$(mktemp -d "${TMPDIR:-/tmp}/depthnas_pkg.XXXXXX")  # its own: not another run's
        trap 'rm -rf "$PKG"' EXIT
        cp -r depthnas "$PKG/"
        for d in spaces datasets export app; do
            [ -d "$d" ] && ln -s "$PWD/$d" "$PKG/depthnas/$d"
        done
        export PYTHONPATH=$PKG${PYTHONPATH:+:$PYTHONPATH}
    fi
fi
say "environment"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  nproc
  PRESET=$PRESET $PY - <<'EOF'
import os, platform, sys, torch, timm
import depthnas, depthnas.datasets.synthetic, depthnas.trainer, depthnas.landmarks, depthnas.scoring
print("python", platform.python_version(), "| torch", torch.__version__, "| timm", timm.__version__,
      "| cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0), "| depthnas", depthnas.__file__)
if os.environ["PRESET"] == "gpu" and not torch.cuda.is_available():
    # --device auto would train the GPU recipe on the CPU, into the GPU table's records
    sys.exit("preset gpu: torch sees no CUDA GPU (PRESET=cpu runs on the CPU)")
EOF
} 2>&1 | tee -a "$LOG"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then say "environment check FAILED"; exit 1; fi

# ---- 2. the table --------------------------------------------------------------------------------
# Continue the committed table: its trainings.jsonl seeds a fresh $WORK (entries of
# another recipe are ignored by build_table.py, so a changed recipe starts over).
COMMITTED=benchmarks/depth_proxy/trainings.jsonl
if [ "$PRESET" = gpu ] && [ ! -f "$WORK/trainings.jsonl" ] && [ -f "$COMMITTED" ]; then
    cp "$COMMITTED" "$WORK/trainings.jsonl"
    say "resuming the committed table: $(wc -l < "$COMMITTED") trainings from $COMMITTED"
fi
say "build_table.py: V1 $V1, V2 $V2, $WORKERS workers, budget ${TABLE_BUDGET}s + ${TABLE_GRACE}s"
# The trainings so far reach $OUT every 5 s: if the device's own time limit ends this
# call before build_table.py does, the next call still resumes from them.
# (Its sleep is killed with it: an orphaned sleep would hold the call's output open.)
( trap 'kill $NAP 2>/dev/null; exit 0' TERM
  while :; do
      sleep 5 & NAP=$!; wait $NAP
      [ -f "$WORK/trainings.jsonl" ] && cp "$WORK/trainings.jsonl" "$OUT/trainings.jsonl.part" \
          && mv "$OUT/trainings.jsonl.part" "$OUT/trainings.jsonl"
  done ) &
COPIER=$!
timeout -k 10 $(( TABLE_BUDGET + TABLE_GRACE + 60 )) \
    $PY benchmarks/depth_proxy/build_table.py --preset "$PRESET" --v1 "$V1" --v2 "$V2" \
        --workers "$WORKERS" --time-budget "$TABLE_BUDGET" --grace "$TABLE_GRACE" \
        --work "$WORK" --out "$OUT/table.json" $TABLE_ARGS 2>&1 | tee "$OUT/build_table.log"
TABLE_EXIT=${PIPESTATUS[0]}
TABLE_EXIT=$(stopped_is_3 "$TABLE_EXIT" build_table.py)
say "build_table exit $TABLE_EXIT"
kill "$COPIER" 2>/dev/null; wait "$COPIER" 2>/dev/null
cp "$WORK/trainings.jsonl" "$OUT/trainings.jsonl" 2>/dev/null
rm -f "$OUT/trainings.jsonl.part"
if [ ! -f "$OUT/table.json" ]; then say "no table: stopping"; exit 1; fi

# ---- 3. the experiment ---------------------------------------------------------------------------
LEFT=$(( TOTAL_BUDGET - $(elapsed) - 10 ))
RANK_BUDGET_ASKED=$RANK_BUDGET
[ "$RANK_BUDGET" -gt "$LEFT" ] && RANK_BUDGET=$LEFT
if [ "$RANK_BUDGET_ASKED" -eq 0 ]; then
    say "RANK_BUDGET=0: ranking.py not run, as asked"
    exit "$TABLE_EXIT"
fi
if [ "$RANK_BUDGET" -lt 100 ]; then  # six processes need ~40 s to start and warm up
    say "only ${RANK_BUDGET}s left: skipping ranking.py (run it alone: see README.md)"
    exit "$TABLE_EXIT"
fi
say "ranking.py: $SPACES, seeds $SEEDS, M=$NUM_LANDMARKS, budget ${RANK_BUDGET}s"
timeout -k 5 $(( RANK_BUDGET + 45 )) \
    $PY benchmarks/ranking.py --table "$OUT/table.json" --spaces $SPACES --seeds $SEEDS \
        --num-landmarks "$NUM_LANDMARKS" --epochs "$RANK_EPOCHS" --time-budget "$RANK_BUDGET" \
        --work "$WORK" --json "$OUT/ranking.json" --md "$OUT/ranking.md" $RANK_ARGS 2>&1 \
        | tee "$OUT/ranking.log"
RANK_EXIT=${PIPESTATUS[0]}
RANK_EXIT=$(stopped_is_3 "$RANK_EXIT" ranking.py)
say "ranking exit $RANK_EXIT"
say "done in $(elapsed)s; files in $OUT"
ls -la "$OUT" | tee -a "$LOG"
# non-zero when either step failed or timed out (the log says which)
[ "$TABLE_EXIT" -eq 0 ] && [ "$RANK_EXIT" -eq 0 ]
