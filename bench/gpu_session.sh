#!/bin/bash
# One GPU run that measures issues 20's and 21's goals, sized for a lent device session (at most 9 minutes on one H100
# or H200, no internet; see DEVELOPERS.md, "GPU sessions"). Stage 1 runs bench/bench_step.py, which times TURModel's real
# training step (train.py's feed_data / update_learning_rate / optimize_parameters on synthetic host batches) at each
# backbone's paper batch and patch, and prints ONE Markdown table and the goals:
#
#   row 1      official PromptIR (va1shn9v/PromptIR, carried in bench/official/PromptIR) fp32, batch 32, 128²: the
#              anchor (about 20 s)
#   rows 2-5   PromptIR (aio3, batch 32, 128²) L1 and TUR, fp32 (about 30 s) and bf16+compile (a cold compile of
#              a Restormer-family net: 1-2 min per cell, capped at 200 s)
#   then       SRResNet, Uformer-B (mio7), TransWeather (allweather), AirNet (aio3) in fp32 (10-30 s per cell), then
#              the same in bf16+compile (1-2 min per cell) while the budget lasts: the cells it cannot start say
#              "not run" in the table
#   columns    first steps (compilation, autotuning) apart from the steady ms/step and images/s, TUR against L1,
#              peak allocated memory, host-device syncs per step (torch.cuda.set_sync_debug_mode('warn'))
#   goals      bf16+compile >= 3x the official fp32 images/s; PromptIR >= 350 images/s on an H100; TUR within 8 % of
#              L1; 0 syncs per step: each met, not met or not measured
# Stage 2 (issue 21), each stage under its own timeout, written to $OUT as well:
#   device_degradations.md  bench_device_degradations.py: degrade_batch on CUDA, ms per 128² sample per type, and
#                           CUDA against the CPU for the same random fields (largest difference in 8-bit levels)
#   restore_batches.md      bench_restore.py --tables batches: PromptIR (aio3 recipe's network, random weights) on a
#                           2048² image in 512² tiles, MP/s at --tile-batch 1, 2, 4, 8 (goal: >= 12 MP/s)
#   restore_pipeline.md     bench_restore.py --tables pipeline: restore.py end to end on four 12-MP PNGs, 512² tiles,
#                           serial against the defaults: MP/s and host seconds per image (goal: <= 0.5 s)
#   per_core.md             bench_data.py --per-core on this machine's CPU, the cores table from stage 1's measured
#                           rates (--gpu-rates-json): the recipes' num_worker_per_gpu from measured numbers
# Time: about 10 s of set-up (wheels, machine), bench_step.py within a 260 s budget (killed at 290 s), then stage 2
# (at most 230 s): under 9 minutes in all. Every line the Python processes write, errors included, reaches the
# console.
#
# Run from the repository root, after `make gpu-wheels` here (basicsr, lmdb and addict as Python 3.12 wheels in .whl/)
# and the official PromptIR read into the ignored bench/official/PromptIR (DEVELOPERS.md, "GPU sessions"):
#   device run: command "bash bench/gpu_session.sh", carry [".whl", "bench/official"], timeout_s 580
# The tables, the goals and every figure come back in $OUT (bench_step.md, bench_step.json, the stage 2 files above,
# machine.txt).
# On the CPU, quickly (tests/test_gpu_session.py; under a minute): bash bench/gpu_session.sh --device cpu --tiny
set -u
device=cuda tiny=() budget=260 cap=290 archs=()
while [ $# -gt 0 ]; do
    case $1 in
    --device) device=${2:?--device cuda|cpu}; shift 2 ;;
    --tiny) tiny=(--tiny); shift ;;
    *) echo "gpu_session: unknown argument '$1' (expected --device cuda|cpu, --tiny)"; exit 2 ;;
    esac
done
if [ ${#tiny[@]} -gt 0 ]; then  # the CPU check: every backbone in fp32 and bf16+compile would not fit a minute
    budget=45 cap=55 archs=(--archs PromptIR SRResNet --modes fp32)
fi
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -c 'import basicsr_tur, lmdb, addict' 2>/dev/null; then  # the device's Python: install the wheels
    ls .whl/*.whl >/dev/null 2>&1 \
        || { echo "gpu_session: basicsr/lmdb/addict missing: run make gpu-wheels here and carry .whl"; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        || { echo "gpu_session: installing .whl/*.whl failed"; exit 1; }
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
    "$PY" -c 'import basicsr_tur, lmdb, addict' || { echo "gpu_session: basicsr_tur does not import (above)"; exit 1; }
fi
[ -f bench/official/PromptIR/net/model.py ] \
    || echo "gpu_session: bench/official/PromptIR is missing (not carried?): the anchor row will say so"

{
    echo "date: $(date -u +%FT%TZ)"
    [ "$device" = cuda ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo "cpus: $(nproc)"
} 2>&1 | tee "$OUT/machine.txt"

echo "=== bench_step.py (budget ${budget} s, killed at ${cap} s) $(date +%T)"
timeout -k 5 "$cap" "$PY" bench/bench_step.py --device "$device" "${tiny[@]}" "${archs[@]}" --budget "$budget" \
    --json "$OUT/bench_step.json" --markdown "$OUT/bench_step.md"
rc=$?
echo "=== bench_step.py: exit $rc $(date +%T)"

# Stage 2 (issue 21): a stage that fails or runs out of time says so and the next one still runs.
stage() {  # stage NAME SECONDS OUTFILE COMMAND...
    local name=$1 limit=$2 out=$3
    shift 3
    echo "=== $name (killed at $limit s) $(date +%T)"
    timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUT/$out"
    local code=${PIPESTATUS[0]}
    echo "=== $name: exit $code $(date +%T)"
    [ "$code" -eq 0 ] || [ "$rc" -ne 0 ] || rc=$code
}
if [ ${#tiny[@]} -gt 0 ]; then
    stage device_degradations 60 device_degradations.md "$PY" bench/bench_device_degradations.py --batch 4 \
        --size 32 --repeat 1
    stage per_core 90 per_core.md "$PY" bench/bench_data.py --per-core --seconds 0.2 --per-core-images 2 \
        --gpu-rates-json "$OUT/bench_step.json"
else
    stage device_degradations 40 device_degradations.md "$PY" bench/bench_device_degradations.py
    stage restore_batches 60 restore_batches.md "$PY" bench/bench_restore.py --device cuda --tables batches \
        --batch-archs PromptIR --batch-tiles 512 --batches 1 2 4 8 --size 2048 --repeat 2 --cell-timeout 50
    stage restore_pipeline 50 restore_pipeline.md "$PY" bench/bench_restore.py --device cuda --tables pipeline \
        --pipeline-tiles 512 --pipeline-images 4 --cell-timeout 40
    stage per_core 80 per_core.md "$PY" bench/bench_data.py --per-core --seconds 2 --per-core-images 8 \
        --gpu-rates-json "$OUT/bench_step.json"
fi
exit $rc
