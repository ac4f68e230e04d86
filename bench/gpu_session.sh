#!/bin/bash
# The GPU checks of BENCHMARKS.md, prepared to fit a lent device session (15 minutes of device time in all, at most
# 10 minutes per command; see DEVELOPERS.md, "GPU sessions"). Two parts, one device call each:
#
#   A (about 7 min): machine, TURLoss vs L1, every backbone's training step in fp32 and bf16 (TUR vs L1, peak
#     memory), the data loader against the fastest row, and kill-and-resume on the GPU in fp32 and bf16.
#   B (about 8 min): bf16 + torch.compile for SRResNet, Restormer, PromptIR and Transweather (each cell capped at
#     55 s, compilation included; Uformer-B and AirNet need a session of their own: --archs Uformer-B AirNet), and
#     kill-and-resume with fp16 and its gradient scaler.
#   C (about 5 min, a later session): restore.py's inference per backbone (bench_restore.py: MP/s whole and tiled
#     at fp32 and bf16 on a 1024² image, peak memory of a 4 MP image with and without tiles).
#
# Run from the repository root, after `make gpu-wheels` here (basicsr, lmdb and addict as wheels in .whl/):
#   device run: command "bash bench/gpu_session.sh A", carry [".whl"], timeout_s 560
#   device run: command "bash bench/gpu_session.sh B", carry [".whl"], timeout_s 560
# Every result is written under $OUT (bench_*.md, resume_*.md, machine.txt) and comes back with the call.
set -u
part=${1:?usage: bash bench/gpu_session.sh A|B|C}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_session: installing .whl/*.whl failed"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
python3 -c 'import basicsr_tur, basicsr, lmdb' || { echo "gpu_session: basicsr_tur does not import: run make gpu-wheels here and carry .whl"; exit 1; }

step() {  # step NAME SECONDS COMMAND...: run with a cap, keep its output in $OUT/NAME.md
    local name=$1 cap=$2
    shift 2
    echo "=== $name (cap ${cap}s) $(date +%T)"
    timeout "$cap" "$@" 2>"$OUT/$name.err" | tee "$OUT/$name.md"
    echo "=== $name: exit ${PIPESTATUS[0]} $(date +%T)"
}

case $part in
A)
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; python3 -c \
        'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'; } \
        >"$OUT/machine.txt" 2>&1
    cat "$OUT/machine.txt"
    step bench_loss 60 python3 bench/bench_loss.py --device cuda
    step bench_train_fp32_bf16 270 python3 bench/bench_train.py --device cuda --modes fp32 bf16 --repeat 10 \
        --workers 8 --cell-timeout 60
    step resume_fp32 60 python3 bench/resume_check.py --device cuda --precision fp32 --workers 4
    step resume_bf16 60 python3 bench/resume_check.py --device cuda --precision bf16 --workers 4
    ;;
B)
    step bench_train_compile 450 python3 bench/bench_train.py --device cuda --modes bf16+compile --repeat 10 \
        --archs SRResNet Restormer PromptIR Transweather --no-loader --cell-timeout 55
    step resume_fp16 60 python3 bench/resume_check.py --device cuda --precision fp16 --workers 4
    ;;
C)
    step bench_restore 450 python3 bench/bench_restore.py --device cuda --size 1024 --tile 512 --repeat 5 \
        --memory-archs SRResNet Restormer PromptIR Uformer-B --cell-timeout 60
    ;;
*)
    echo "gpu_session: part '$part': expected A, B or C"
    exit 2
    ;;
esac
