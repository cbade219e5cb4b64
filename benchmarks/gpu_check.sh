#!/usr/bin/env bash
# One prepared GPU check for issue 8: CUDA sanity + step_time.py at the paper's
# configuration (bf16 + channels-last, fp32, and bf16 + compile), on one H100/H200.
#
#   bash benchmarks/gpu_check.sh          # from the repository root
#
# Writes to $OUT (the device tool's folder) or benchmarks/gpu_out: gpu_check.log,
# bf16_c.json, bf16_ab.json, fp32_ab.json, compile_ab.json (5 files). Finishes within
# BUDGET_S (420 s): each stage has a hard time limit, parts (a)+(b) and (c) run as
# separate stages so a slow (c) cannot take the (a)/(b) figures with it, and a stage
# whose limit no longer fits in what is left is skipped, not started to be killed.
# Exit status 0 only if the sanity check and every stage that ran succeeded (a
# skipped stage is not a failure; the log's last lines name the failed ones).
#
# No venv and no network there: the machine's python3 already holds torch,
# torchvision, timm, tqdm, pyyaml, safetensors, scipy and tensorboard (see
# /work/.library/device/KINDS.md), which is all this check imports. Wheels in
# .whl/ (carried) are installed first if present; none are needed today.
#
# step_time.py lets cuDNN time its algorithms (cudnn.benchmark), as `depthnas search`
# does; the first GPU figures in RESULTS.md (2026-11-28) predate that and ran with
# cuDNN's heuristics, so the bf16 stage also says what the timing bought.
#
# DRY_RUN=1 runs the same stages on the CPU at a tiny size (to check the script
# itself on a machine without a GPU; its numbers mean nothing).
set -uo pipefail
START=$(date +%s)
FAILED=""  # stages that failed or timed out: the exit status says so, not only the log
DRY_RUN=${DRY_RUN:-0}
if [ "$DRY_RUN" = 1 ]; then
    export CHECK_DEVICE=cpu OMP_NUM_THREADS=1  # threads waiting on a busy CPU: ~10x slower
    SMALL=(--device cpu --backbone mobilenetv3_small_050 --image-size 64 --features 16
           --batch-size 2 --warmup 0 --iters 1 --calib-batches 1 --val-batches 1 --candidates 1
           --score-rounds 1 --score-warmup 0 --threads 1)
else
    export CHECK_DEVICE=cuda
    SMALL=()
fi
BUDGET=${BUDGET_S:-420}                       # whole script, seconds
case $BUDGET in ''|*[!0-9]*)  # bash arithmetic is whole numbers: 300.5 would disable every limit
    echo "gpu_check.sh: BUDGET_S must be whole seconds, got '$BUDGET'" >&2; exit 2;; esac
OUT=${OUT:-$PWD/benchmarks/gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 GRADIO_ANALYTICS_ENABLED=False
# `python -` puts the working folder first on sys.path, where the checkout's depthnas/
# (without spaces/ and datasets/, which live beside it) would hide the laid-out package.
export PYTHONSAFEPATH=1

say() { echo "== $(date +%H:%M:%S) [+$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# ---- packages ------------------------------------------------------------------------
if compgen -G ".whl/*.whl" > /dev/null; then
    say "installing carried wheels from .whl/"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# depthnas without pip: the wheel maps spaces/ -> depthnas.spaces (and datasets,
# export, app), so lay the same tree out in /tmp and put it first on the path.
# (a folder of its own: a fixed name was shared by every checkout and test run at once)
PKG=$(mktemp -d "${TMPDIR:-/tmp}/depthnas_pkg.XXXXXX")
trap 'rm -rf "$PKG"' EXIT
cp -r depthnas "$PKG/"
for d in spaces datasets export app; do
    [ -d "$d" ] && ln -s "$PWD/$d" "$PKG/depthnas/$d"
done
export PYTHONPATH=$PKG:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}

say "environment"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  $PY - <<'EOF'
import platform, torch, timm, torchvision
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version(), "| timm", timm.__version__,
      "| torchvision", torchvision.__version__)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NONE")
import depthnas.spaces, depthnas.trainer; print("depthnas imports from", depthnas.__file__)
import os, sys
if os.environ.get("CHECK_DEVICE", "cuda") == "cuda" and not torch.cuda.is_available():
    sys.exit("torch sees no CUDA GPU: every stage would fail in turn (DRY_RUN=1 runs on the CPU)")
EOF
} >> "$LOG" 2>&1 || { say "environment check FAILED"; exit 1; }
tail -n 4 "$LOG"

# ---- CUDA sanity: tiny bf16 super-net steps with the landmark regularizer ----------------
say "CUDA sanity (tiny super-net, bf16 + channels-last, landmark pair; shared == separate)"
# ~20 s on a GPU; a stall must not take the stages below with it
timeout 90 $PY - >> "$LOG" 2>&1 <<'EOF'
import random, tempfile, torch
from torch.utils.data import default_collate
from depthnas.config import LandmarkConfig, TrainConfig
from depthnas.scoring import PathEvaluator
from depthnas.landmarks import LandmarkRegularizer
from depthnas.spaces import get_space
from depthnas.task import DepthTask
from depthnas.trainer import Trainer
from toys import BlobDepth

dev = torch.device(__import__("os").environ.get("CHECK_DEVICE", "cuda"))
space, task = get_space("v2-nonsync"), DepthTask()
rng = random.Random(0)
archs = [a for a in (space.sample(rng) for _ in range(40)) if not space.has_dead_cell(a)][:4]
torch.manual_seed(0)
net = space.build_supernet(backbone="mobilenetv3_small_050", features=32)
reg = LandmarkRegularizer([(a, float(i)) for i, a in enumerate(archs[:3])], BlobDepth(16, seed=1),
                          task, LandmarkConfig(schedule="constant", pairs=1), batch_size=8,
                          device=dev, num_workers=2)
cfg = TrainConfig(precision="bf16", channels_last=True, lr=1e-3, backbone_lr=1e-4)
with tempfile.TemporaryDirectory() as tmp:
    t = Trainer(net, task, cfg, BlobDepth(32), out_dir=tmp, total_epochs=1, device=dev,
                sample_arch=space.sample, regularizer=reg, batch_size=8, progress=False)
    data = BlobDepth(32)
    for step in range(4):
        batch = {k: v.to(dev) for k, v in default_collate([data[i] for i in range(8 * (step % 4), 8 * (step % 4) + 8)]).items()}
        logs = t.train_step(batch, archs[3])
        print("step", step, {k: round(v, 4) for k, v in logs.items()})
        assert all(v == v and abs(v) < 1e6 for v in logs.values()), logs
# shared encoder == separate passes, on the GPU in fp32 (TF32 off)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
net = net.float().to(memory_format=torch.contiguous_format).train()
res = {}
batch = reg.batch(0)
for share in (True, False):
    net.zero_grad(set_to_none=True)
    reg.share_encoder, reg.channels_last = share, False
    r, _ = reg.penalty(net, batch, [(0, 1), (0, 2), (1, 2)])
    r.backward()
    res[share] = (float(r.detach()), {n: p.grad.clone() for n, p in net.named_parameters()
                                      if p.grad is not None})
(ra, ga), (rb, gb) = res[True], res[False]
assert ga.keys() == gb.keys()
flat_a = torch.cat([ga[n].flatten() for n in ga])
flat_b = torch.cat([gb[n].flatten() for n in ga])
rel = ((flat_a - flat_b).norm() / flat_b.norm().clamp_min(1e-12)).item()
print(f"penalty shared {ra:.6f} separate {rb:.6f}; gradients: relative L2 difference {rel:.2e} "
      f"over {len(ga)} tensors (fp32 summation order differs; float64 on the CPU test agrees to 1e-7)")
assert abs(ra - rb) <= 1e-5 * max(abs(rb), 1e-6) and rel < 1e-3
ev = dict(batch_size=8, calib_batches=2, device=dev)
c = PathEvaluator(net, task, BlobDepth(16, seed=3), BlobDepth(16, seed=4), cache_features=True, **ev)
f = PathEvaluator(net, task, BlobDepth(16, seed=3), BlobDepth(16, seed=4), cache_features=False, **ev)
h = PathEvaluator(net, task, BlobDepth(16, seed=3), BlobDepth(16, seed=4), cache_features=True,
                  cache_device="host", **ev)
for a in archs:
    sc, sf, sh = c.score(a), f.score(a), h.score(a)
    print(f"score cached {sc:.6f} full {sf:.6f} host-cached {sh:.6f}")
    assert abs(sc - sf) <= 1e-4 * abs(sf) and abs(sh - sc) <= 1e-6 * abs(sc)
assert c.cached_on.type == dev.type and h.cached_on.type == "cpu"
print("CUDA SANITY OK")
EOF
if [ $? -eq 0 ]; then say "sanity passed"; else say "sanity FAILED (see log)"; FAILED="$FAILED sanity"; fi
tail -n 12 "$LOG"

# ---- the benchmarks ----------------------------------------------------------------------
run_bench() {  # name, time limit, extra args...
    local name=$1 limit=$2; shift 2
    local remaining; remaining=$(left)
    rm -f "$OUT/$name.json"  # an earlier run's must not pass for this one's, run or skipped
    if [ "$remaining" -lt "$limit" ]; then say "SKIP $name: ${remaining}s left, it may need ${limit}s"; return; fi
    say "step_time $name (limit ${limit}s): $*"
    # SIGTERM at the limit: step_time.py writes the rounds it measured and exits (3);
    # SIGKILL 20 s later, should it not
    timeout -k 20 "$limit" $PY benchmarks/step_time.py --preset paper --json "$OUT/$name.json" \
        "$@" "${SMALL[@]}" 2>&1 | tee -a "$LOG"
    local code=${PIPESTATUS[0]}
    local note=""
    if [ "$code" = 124 ] || [ "$code" = 137 ]; then
        note=" (timed out: $([ -f "$OUT/$name.json" ] && echo "$name.json holds the rounds measured" || echo "no JSON"))"
    fi
    say "$name exit $code$note"
    [ "$code" -eq 0 ] || FAILED="$FAILED $name"
}
# Most important first: (c) at the default 200 + 40 batch mix has never been timed on
# a GPU (issue 8's last unmeasured target), then (a) and (b) again on today's code,
# then the other precisions (compile runs only with BUDGET_S >= ~560).
# (c) without FLOP counts: they are hardware-independent (benchmarks/paper_flops.py has
# them) and would cost three more passes over 240 batches. The last H200 run did (a), (b) and
# (c) at 10 + 10 batches in 67 s.
run_bench bf16_c 180 --precision bf16 --channels-last --parts c --no-peak --no-flops
run_bench bf16_ab 90 --precision bf16 --channels-last --parts ab
run_bench fp32_ab 120 --precision fp32 --no-channels-last --parts ab --no-peak
# compile only the backbone (see trainer.compile_model); parts (a) and (b)
if [ "$DRY_RUN" = 1 ]; then  # inductor compiling for a busy CPU outran the stage's limit
    say "SKIP compile_ab in a dry run: compiling on the CPU takes minutes; the GPU run times it"
    rm -f "$OUT/compile_ab.json"  # an earlier GPU run's is not this run's
else
    run_bench compile_ab 200 --precision bf16 --channels-last --compile --parts ab --iters 8 --no-peak
fi
say "done in $(( $(date +%s) - START ))s; files in $OUT${FAILED:+; FAILED:$FAILED}"
ls -la "$OUT" | tee -a "$LOG"
[ -z "$FAILED" ]
