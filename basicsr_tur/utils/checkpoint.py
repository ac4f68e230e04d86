"""Checkpoint reading in one place: unwrap foreign formats, load strictly with the head reported; the RNG states a
training state carries. Checkpoints are written by utils.files.atomic_write (`lambda f: torch.save(obj, f)`)."""
from __future__ import annotations

from os import path as osp
from typing import Any

import torch
from basicsr.utils import get_root_logger
from torch import nn

from basicsr_tur.utils.errors import CheckpointError

# Key prefix of the TUR uncertainty head in every backbone (re-exported by archs/uncertainty.py). It lives here, the
# lowest layer, because checkpoint loading must tell head keys from backbone keys without importing the archs.
HEAD_PREFIX = 'uncertainty_head.'

_WRAPPER_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net', 'net_g')
_PREFIXES = ('module.', 'net.')


def state_dict_entry(ckpt: Any, param_key: str | None = None,
                     where: str = 'checkpoint') -> str | None:
    """The top-level entry of a checkpoint that holds its tensors: `param_key`, or without it the
    first of params_ema/params/state_dict/... present; None when the checkpoint is itself the tensor
    dict (or no dict). Raises CheckpointError (one line, naming `where`) when no entry holds a dict."""
    if not isinstance(ckpt, dict) or all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return None
    keys = [param_key] if param_key else list(_WRAPPER_KEYS)
    found = [k for k in keys if k in ckpt and isinstance(ckpt[k], dict)]
    if not found:
        raise CheckpointError(f"{where}: no '{param_key or '/'.join(_WRAPPER_KEYS)}' entry "
                              f"(top-level keys: {', '.join(map(str, list(ckpt)[:10]))})")
    return found[0]


def unwrap_state_dict(ckpt: Any, param_key: str | None = None, where: str = 'checkpoint') -> dict:
    """The tensor dict inside a checkpoint: `param_key` (or params_ema/params/state_dict/...), prefixes stripped."""
    entry = state_dict_entry(ckpt, param_key, where)
    state = ckpt if entry is None else ckpt[entry]
    if not isinstance(state, dict):
        raise CheckpointError(f'{where}: expected a state dict (a mapping of tensors), got {type(state).__name__}')
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_torch_file(path: str, what: str, where: str | None = None) -> Any:
    """torch.load of a file on the CPU with weights_only=True; any failure is one CheckpointError,
    'cannot read <what> <where>: <exception type>: <first line>' ('(empty file)' added for a zero-byte file)."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many types for an unreadable file
        # Some torch.load messages are empty (a zero-byte file) or bare ('101', the pickle opcode of a text file):
        # the exception type says what they mean.
        reason = ': '.join([type(err).__name__] + str(err).splitlines()[:1])
        if osp.isfile(path) and osp.getsize(path) == 0:
            reason += ' (empty file)'
        raise CheckpointError(f'cannot read {what} {where or path}: {reason}') from None


def read_state_dict(path: str, param_key: str | None = 'params', where: str | None = None) -> dict:
    """The tensor dict of a checkpoint file: `param_key` when the file has it, else the usual wrappers.

    where: how errors name the file (default: the path). Raises FileNotFoundError for a missing file, and
    CheckpointError for one torch.load cannot read (empty, truncated, not a checkpoint) or unwrap_state_dict's.
    """
    return read_weights(path, param_key, where)[0]


def read_weights(path: str, param_key: str | None = 'params',
                 where: str | None = None) -> tuple[dict, str | None]:
    """read_state_dict's tensor dict and the entry of the file it came from (e.g. 'params', or
    'params_ema' for a requested key the file lacks); None when the file is itself the tensor dict.
    Same errors."""
    where = where or path
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {where}')
    ckpt = load_torch_file(path, 'checkpoint', where)
    # A requested key the file lacks falls back to the usual wrappers (a plain or foreign checkpoint).
    requested = param_key if isinstance(ckpt, dict) and param_key in ckpt else None
    entry = state_dict_entry(ckpt, requested, where)
    return unwrap_state_dict(ckpt, entry, where), entry


def load_checkpoint(net: nn.Module, path: str, param_key: str | None = 'params', strict: bool = True,
                    require_head: str | None = None, state: dict | None = None) -> bool:
    """Load a checkpoint file into net; with strict, only the uncertainty head may be missing (and is reported).
    Returns whether the file held the uncertainty head's weights (after the key mapping below).

    require_head: why the head's weights are needed (e.g. 'val.uncertainty needs a checkpoint trained with TURLoss');
    when given, a file without any `uncertainty_head.` key raises a CheckpointError (one line, ending with it) and
    nothing is loaded.

    The file may wrap its tensors (params/params_ema/state_dict/...) and prefix them (module./net.); when the
    network's class defines `checkpoint_filter_fn(state_dict, model) -> state_dict` (timm's signature, a static
    method next to the backbone's definition), the authors' key names are mapped by it before loading.
    Without strict, tensors whose shape differs from the network's are skipped with a warning listing them (as
    basicsr does), and missing/unexpected keys are logged. Raises CheckpointError (a shape differs, or keys
    differ), one line, under strict.
    """
    if state is None:  # a caller that has already read the file passes its tensors (`path` then names it)
        state = read_state_dict(path, param_key)
    # A backbone whose authors saved other key names maps them in one function next to its definition (timm's habit).
    filter_fn = getattr(type(net), 'checkpoint_filter_fn', None)
    if filter_fn is not None:
        state = filter_fn(state, net)
    if require_head is not None and not any(k.startswith(HEAD_PREFIX) for k in state):
        raise CheckpointError(f'{path}: holds no TUR uncertainty head (keys {HEAD_PREFIX}*); {require_head}')
    own = net.state_dict()
    resized = {k: tuple(v.shape) for k, v in state.items() if k in own and own[k].shape != v.shape}
    if strict and resized:
        key = next(iter(resized))
        more = f' (and {len(resized) - 1} more)' if len(resized) > 1 else ''
        raise CheckpointError(f"{path}: key '{key}' has shape {resized[key]}, the network expects "
                              f'{tuple(own[key].shape)}{more}; strict_load_g: false loads the rest and skips these')
    # Non-strict loading skips tensors whose shape differs (basicsr's "Size different, ignore"): they stay missing.
    state = {k: v for k, v in state.items() if k not in resized}
    # The head is training-only: a TUR checkpoint loads into a head-less backbone with its head keys dropped.
    head_dropped = [k for k in state if k.startswith(HEAD_PREFIX) and k not in own]
    state = {k: v for k, v in state.items() if k not in head_dropped}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    head_missing = [k for k in missing if k.startswith(HEAD_PREFIX)]
    other_missing = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if strict and (other_missing or unexpected):
        parts = []
        if other_missing:
            parts.append(f'missing keys {other_missing[:5]}{" ..." if len(other_missing) > 5 else ""}')
        if unexpected:
            parts.append(f'unexpected keys {unexpected[:5]}{" ..." if len(unexpected) > 5 else ""}')
        raise CheckpointError(f'{path}: does not match {type(net).__name__}: ' + '; '.join(parts))
    net.load_state_dict(state, strict=False)
    logger = get_root_logger()
    if head_dropped:
        logger.info(f'{path}: uncertainty head weights ignored (the network has no head; inference never uses it)')
    if head_missing:
        logger.info(f'{path}: backbone checkpoint without the uncertainty head; '
                    f'its {len(head_missing)} tensors keep their fresh initialisation')
    if resized:
        logger.warning(f'{path}: size different, ignored (kept the fresh initialisation): '
                       + ', '.join(f'{k}: file {shape}, network {tuple(own[k].shape)}' for k, shape in resized.items()))
    other_missing = [k for k in other_missing if k not in resized]
    if not strict and (other_missing or unexpected):
        logger.warning(f'{path}: loaded non-strictly; missing {other_missing}, unexpected {unexpected}')
    return bool(head_dropped) or any(k.startswith(HEAD_PREFIX) for k in state)


def capture_rng_state() -> dict:
    """Every global RNG (python, numpy, torch, CUDA) in a form `torch.load(weights_only=True)` accepts."""
    import random

    import numpy as np
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {'python': random.getstate(), 'numpy': (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                     gauss),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the RNG states saved by capture_rng_state."""
    import random

    import numpy as np
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
