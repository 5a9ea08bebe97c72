#!/usr/bin/env bash
# The checks that need a GPU, in one run of under 8 minutes on one GPU; writes one JSON file.
#
#   bash scripts/gpu_check.sh [OUT_DIR]      (default: $OUT, else gpu-check/)
#
# 1. `learndrop bench --preset gpu-resnet18 --seeds 1`: baseline, Learn&Drop (cache on the
#    device), the time-matched baseline and Learn&Drop at that budget; speed-up, accuracy,
#    efficiency, peak device memory.
# 2. scripts/gpu_timer_check.py: the engine's CUDA-event step timer against the host's clock
#    around synchronised steps, and the peak memory of a ResNet-18 step.
# 3. With two GPUs or more: a two-process data-parallel run (NCCL) of the tiny digits run,
#    whose ranks must agree on every drop.
# Everything lands in OUT_DIR/gpu_check.json (and each part's own output beside it). A part
# that fails is recorded as failed; the script goes on with the next one.
# A dry run of the script itself on a machine without a GPU:
#   GPU_CHECK_PRESET=quick-digits GPU_CHECK_TIMER="--device cpu --steps 30 --batch-size 16" \
#     bash scripts/gpu_check.sh /tmp/gpu-check
set -u
OUT_DIR="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
LD="$PY -m learndrop.core.cli"
export PYTHONUNBUFFERED=1

status() { # name, exit code
  echo "{\"part\": \"$1\", \"exit_code\": $2}" >> "$OUT_DIR/parts.jsonl"
}

"$PY" - <<'EOF' > "$OUT_DIR/machine.json"
import json, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                  "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}))
EOF
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
: > "$OUT_DIR/parts.jsonl"

timeout 330 $LD bench --preset "${GPU_CHECK_PRESET:-gpu-resnet18}" --seeds 1 --no-store --quiet \
  --output "$OUT_DIR/bench.json" --output-dir "$OUT_DIR/runs" > "$OUT_DIR/bench.txt" 2>&1
status bench $?

timeout 120 "$PY" scripts/gpu_timer_check.py --out "$OUT_DIR/timer.json" ${GPU_CHECK_TIMER:-} \
  > "$OUT_DIR/timer.txt" 2>&1
status timer $?

if [ "$GPUS" -ge 2 ]; then
  timeout 90 $LD train --dataset digits --model small_cnn --epochs 4 --nproc 2 --device cuda \
    --drop.threshold 1.0 --no-store --output-dir "$OUT_DIR/ddp" --json > "$OUT_DIR/ddp.txt" 2>&1
  status ddp_nccl $?
fi

"$PY" - "$OUT_DIR" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def read(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
bench = read("bench.json") or {}
keep = ("speedup", "accuracy_delta", "time_matched_accuracy_delta", "budgeted_accuracy_delta",
        "efficiency", "score_overhead", "measured_train_time_saved", "predicted_train_time_saved")
ddp = None
lines = (out / "ddp.txt").read_text().strip().splitlines() if (out / "ddp.txt").exists() else []
if lines:
    try:
        ddp = json.loads(lines[-1])
    except ValueError:
        ddp = {"error": lines[-1]}
result = {
    "machine": read("machine.json"),
    "parts": [json.loads(l) for l in (out / "parts.jsonl").read_text().splitlines() if l],
    "bench": {k: bench.get(k) for k in keep} | {"rows": [
        {k: r.get(k) for k in ("run", "wall_time_s", "final_accuracy", "train_flops_saved_total",
                               "peak_memory_mb", "peak_memory_kind")}
        for r in bench.get("rows", [])]},
    "timer": read("timer.json"),
    "ddp_nccl": ddp,
}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
EOF
