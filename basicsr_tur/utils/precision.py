"""What a precision costs on a device, said once where a run or a restore starts."""
from __future__ import annotations

import torch
from basicsr.utils import get_root_logger


def warn_slow_precision(dtype: torch.dtype | None, device: torch.device, where: str) -> bool:
    """Warn (basicsr logger) that float16 autocast on a CPU is many times slower than float32 or bfloat16: CPUs
    have no fast float16 kernels for most layers (Real-ESRGAN #306/#319 report the same). Returns whether it warned.

    where: the option or flag that asked for it (e.g. 'train.mixed_precision: fp16', '--precision fp16').
    """
    if dtype != torch.float16 or device.type != 'cpu':
        return False
    get_root_logger().warning(f'{where} on the CPU: float16 has no fast CPU kernels for most layers and runs many '
                              'times slower than fp32; use bf16 (fast on CPUs with AVX512-BF16 or AMX) or fp32')
    return True
