"""Device memory in words: the one-line error for an allocation failure, and the peak memory of a run.

Used by the model's validation (models/tur_model.py) and by restore.py's inference (inference/restorer.py): both
turn torch's out-of-memory error (CUDA) or the allocator's RuntimeError (CPU) into one line that names the image,
its size, the device, the memory asked for and what to do instead.
"""
from __future__ import annotations

import re

import torch

from basicsr_tur.utils.errors import RunError

try:
    import resource
except ImportError:  # not on Windows, which reports no peak resident set this way
    resource = None

_ASKED = re.compile(r'tried to allocate ([\d.]+ ?[KMGT]i?B|\d+ bytes)', re.IGNORECASE)


def out_of_memory_error(err: RuntimeError, where: str, image: str, lq: torch.Tensor,
                        remedy: str = 'score it tile by tile (val.tile: {size: 512, overlap: 32})',
                        device: torch.device | None = None) -> RunError | None:
    """One-line error for an allocation failure (CUDA or CPU) while restoring `image`, an lq of shape (..., H, W) on
    `device` (default: lq's), naming the image, its size, the device, the memory asked for and `remedy`; None when
    err is another error."""
    text = str(err)
    if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in text \
            and 'not enough memory' not in text:
        return None
    asked = _ASKED.search(text)
    h, w = lq.shape[-2:]
    return RunError(f'{where}: out of memory restoring {image} ({h}x{w}) on {device or lq.device}'
                    + (f' (tried to allocate {asked.group(1)})' if asked else '')
                    + f'; {remedy}, or use a device with more memory')


def peak_memory(device: torch.device) -> str:
    """Peak memory so far, in words: CUDA's max allocated on a GPU, else the process's peak resident set."""
    if device.type == 'cuda':
        return f'{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f} GiB (CUDA, max allocated)'
    if resource is None:
        return 'unknown'
    # ru_maxrss is in KiB on Linux.
    return f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB (process peak RSS)'
