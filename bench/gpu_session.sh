#!/bin/bash
# One GPU run that measures issue 20's goals, sized for a lent device session (at most 8 minutes on one H100 or
# H200, no internet; see DEVELOPERS.md, "GPU sessions"). It runs bench/bench_step.py, which times TURModel's real
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
# Time: about 10 s of set-up (wheels, machine), then bench_step.py within a 400 s budget (killed at 430 s): under
# 8 minutes in all. Every line the Python processes write, errors included, reaches the console.
#
# Run from the repository root, after `make gpu-wheels` here (basicsr, lmdb and addict as Python 3.12 wheels in .whl/)
# and the official PromptIR read into the ignored bench/official/PromptIR (DEVELOPERS.md, "GPU sessions"):
#   device run: command "bash bench/gpu_session.sh", carry [".whl", "bench/official"], timeout_s 560
# The table, the goals and every figure come back in $OUT (bench_step.md, bench_step.json, machine.txt).
# On the CPU, quickly (tests/test_gpu_session.py; under a minute): bash bench/gpu_session.sh --device cpu --tiny
set -u
device=cuda tiny=() budget=400 cap=430 archs=()
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
exit $rc
