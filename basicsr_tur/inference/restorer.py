"""A loaded network ready to restore images: whole or tile by tile (a batch of tiles per forward
call), at fp32, bf16 or fp16, with an options file's test-time padding (val.pad), with TUR's
per-pixel uncertainty σ when the checkpoint has the head.

`load_restorer` builds it from a ModelSource (source.py); `load_network` is its loading step alone
(a network in eval mode with its weights), for callers that run the network themselves.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from os import path as osp

import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.utils import get_root_logger

from basicsr_tur.inference.images import Staged, stage_image, to_image, to_input
from basicsr_tur.inference.source import KeyCheck, ModelSource, choose_param_key, input_channels
from basicsr_tur.utils.checkpoint import load_checkpoint, load_torch_file, unwrap_state_dict
from basicsr_tur.utils.errors import ArgumentError, CheckpointError, DataError, RunError
from basicsr_tur.utils.memory import out_of_memory_error
from basicsr_tur.utils.padding import InputPadding, crop
from basicsr_tur.utils.precision import warn_slow_precision
from basicsr_tur.utils.tiling import check_tile, tile_count, tiled_forward

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class Restored:
    """One restored image: `image` of the input's kind (dtype, channels, alpha); `sigma` (H, W)
    float32, the TUR head's σ averaged over the colour channels, on the [0, 1] intensity scale, or
    None; `tiles` run."""

    image: np.ndarray
    sigma: np.ndarray | None
    tiles: int = 1


class Restorer:
    """A loaded network, ready to restore images (see `restore`); built by `load_restorer`.

    net: the backbone, in eval mode on `device`; has_head: it was built with the TUR head (σ
    available). precision: 'fp32', 'bf16' or 'fp16' (autocast; the output is float32).
    tile/overlap: tiled inference (utils/tiling.py) when tile is set; tile_batch: tiles per forward
    call (None: default_tile_batch). compile: torch.compile'd forward (it pays with tiles, whose
    shape repeats). padding: an options file's val.pad (utils/padding.py), as TURModel.test applies
    it: the whole input padded before the forward and before tiling, the output and σ cropped back.
    """

    def __init__(self, net: torch.nn.Module, device: torch.device, precision: str = 'fp32',
                 tile: int | None = None, overlap: int = 32, channels_last: bool = False,
                 compile: bool = False, described: str = '', in_channels: int = 3,
                 tile_batch: int | None = None, padding: InputPadding | None = None) -> None:
        if precision not in PRECISIONS:
            raise ArgumentError(f"precision must be one of {', '.join(PRECISIONS)}, "
                                f"got '{precision}'")
        if tile is not None:
            check_tile(tile, overlap, ('--tile', '--tile-overlap'))
        if tile_batch is not None and tile_batch < 1:
            raise ArgumentError(f'--tile-batch must be >= 1, got {tile_batch}')
        self.net, self.device, self.precision = net, device, precision
        warn_slow_precision(PRECISIONS[precision], device, f'--precision {precision}')
        self.tile, self.overlap, self.channels_last = tile, overlap, channels_last
        self.tile_batch = tile_batch or default_tile_batch(device, tile)
        self.has_head = getattr(net, 'uncertainty_head', None) is not None
        self.size_multiple = int(getattr(net, 'size_multiple', 1))
        self.described, self.in_channels = described, in_channels
        self.padding = padding
        self.param_key: str | None = None  # the checkpoint entry of the weights (load_restorer)
        self._forward = torch.compile(net) if compile else net

    def tiles_for(self, height: int, width: int) -> int:
        """How many tiles an image of this size is restored in (1: whole), val.pad's padding
        included."""
        if not self.tile:
            return 1
        if self.padding:
            (bottom, right), (left, right2, top, bottom2) = self.padding.pads(height, width)
            height, width = height + bottom + top + bottom2, width + right + left + right2
        return tile_count(height, width, self.tile, self.overlap, self.size_multiple)

    def _run(self, x: torch.Tensor, uncertainty: bool) -> tuple[torch.Tensor, ...]:
        if uncertainty:
            return tuple(self._forward(x, with_uncertainty=True))
        return (self._forward(x),)

    def _outputs(self, x: torch.Tensor, uncertainty: bool, progress=None,
                 name: str = 'image') -> tuple[torch.Tensor, ...]:
        """The network's outputs for x (1, C, H, W) on the device: whole or tiled, under the
        precision's autocast; with `padding`, of the padded x, cropped back to x's size. A
        DataError naming `name` when the padding cannot pad x (reflection's limit)."""
        if uncertainty and not self.has_head:
            raise CheckpointError(f'{self.described}: the network has no TUR uncertainty head, '
                                  'so there is no σ map')
        padded, (top, left) = x, (0, 0)
        if self.padding:
            try:
                padded, (top, left) = self.padding.pad(x)
            except ValueError as err:
                raise DataError(f'{name}: {err}') from None
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            if self.tile:
                outputs = tiled_forward(lambda t: self._run(t, uncertainty), padded, self.tile,
                                        self.overlap, multiple=self.size_multiple,
                                        progress=progress, batch=self.tile_batch)
            else:
                outputs = self._run(padded, uncertainty)
        if padded is not x:
            outputs = tuple(crop(o, top, left, *x.shape[-2:]) for o in outputs)
        return outputs

    @torch.inference_mode()
    def restore_tensor(self, x: torch.Tensor, uncertainty: bool = False,
                       progress=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(restored (1, 3, H, W) float32 on the CPU, σ (1, 3, H, W) float32 or None) of x
        (1, 3, H, W) in [0, 1]."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.to(self.device, memory_format=memory_format)
        outputs = tuple(o.float().cpu() for o in self._outputs(x, uncertainty, progress))
        return outputs[0], (outputs[1] if uncertainty else None)

    def _remedy(self) -> str:
        """What to try when an image does not fit in memory."""
        if self.tile and self.tile_batch > 1:
            return f'restore it with fewer tiles per forward (--tile-batch {self.tile_batch // 2})'
        if self.tile:
            return f'restore it in smaller tiles (--tile {max(self.tile // 2, self.overlap + 1)})'
        return 'restore it tile by tile (--tile 512)'

    def _host_oom(self, name: str, img: np.ndarray) -> RunError:
        size = f'{img.shape[0]}x{img.shape[1]}'
        return RunError(f'restore: out of memory restoring {name} ({size}) on the host; '
                        f'{self._remedy()}, or free memory')

    def stage(self, img: np.ndarray, name: str = 'image') -> Staged:
        """An image as read_image returns it, ready for `restore` (pinned for a CUDA device). Safe
        to call in another thread (restore.py stages the next image while the network runs);
        RuntimeError, one line, when the host runs out of memory."""
        try:
            return stage_image(img, self.in_channels, pin=self.device.type == 'cuda')
        except MemoryError:
            raise self._host_oom(name, img) from None

    @torch.inference_mode()
    def restore(self, img: np.ndarray | Staged, uncertainty: bool = False, name: str = 'image',
                progress=None) -> Restored:
        """Restore an image as read_image returns it (or as `stage` made it); the result has its
        dtype, channels and alpha.

        Raises RuntimeError, one line, naming `name`, its size, the memory asked for and --tile or
        --tile-batch when the device runs out of memory; CheckpointError for uncertainty=True
        without the head.
        """
        staged = img if isinstance(img, Staged) else self.stage(img, name)
        img = staged.img
        try:
            x = to_input(staged, self.device, self.channels_last)
            outputs = self._outputs(x, uncertainty, progress, name)
            # σ first: to_image works in place on the restored tensor.
            sigma = outputs[1].float().cpu()[0].mean(0).numpy() if uncertainty else None
            return Restored(to_image(outputs[0], staged), sigma, self.tiles_for(*img.shape[:2]))
        except MemoryError:  # numpy's or Python's allocation on the host
            raise self._host_oom(name, img) from None
        except RuntimeError as err:
            # Only the input's shape is needed: nothing more goes to a device that has just run out
            # of memory.
            oom = out_of_memory_error(err, 'restore', name,
                                      torch.empty(0, *img.shape[:2], device='meta'),
                                      remedy=self._remedy(), device=self.device)
            if oom is None:
                raise
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()
            raise oom from None


# The pixels of one forward call that the default tile batch stays within. CUDA: one 512² tile,
# the size the command suggests, so that batching smaller tiles asks no more memory of the device
# than that suggestion does. CPU: 256², measured (bench_restore.py --tables batches, 2 threads):
# 1/2/4/8 tiles of 128² gave 0.041/0.037/0.045/0.024 and 0.031/0.039/0.042/0.023 MP/s for the
# official SRResNet (4 ahead of 1 in each of four pairs), the tiny one was within noise at 128²
# and fastest with 1 tile of 512² (5.2/3.2/2.3/2.3 MP/s); 8 tiles of 128² were slowest throughout.
TILE_BATCH_PIXELS = {'cuda': 512 * 512, 'cpu': 256 * 256}


def default_tile_batch(device: torch.device, tile: int | None) -> int:
    """Tiles per forward call when --tile-batch is not given: as many as hold the device type's
    TILE_BATCH_PIXELS, 1 to 16. CUDA: 16 of 128², 4 of 256², 1 of 384² or more; there one small
    tile's forward is mostly host time (launching the ~2,700 ops of a 128² PromptIR tile takes
    20-30 ms for 1.5-2 ms of GPU work), which a batch shares, and a GPU with memory to spare may go
    faster with more (--tile-batch). CPU: 4 of 128², 1 of 256² or more."""
    if not tile:
        return 1
    pixels = TILE_BATCH_PIXELS['cuda' if device.type == 'cuda' else 'cpu']
    return max(1, min(16, pixels // (tile * tile)))


def pick_device(name: str | None) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' (None: CUDA when available, else the CPU); ArgumentError (one
    line) for a device this machine lacks."""
    if name is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ArgumentError(f"--device: expected cpu, cuda or cuda:N, got '{name}'") from None
    if device.type == 'cuda':
        count = torch.cuda.device_count()
        if count == 0 or (device.index or 0) >= count:
            raise ArgumentError(f'--device {name}: this machine has {count} CUDA device(s); use '
                                '--device cpu')
    elif device.type != 'cpu':
        raise ArgumentError(f"--device: expected cpu, cuda or cuda:N, got '{name}'")
    return device


def new_network(network_g: dict, head: bool = False) -> torch.nn.Module:
    """The network of network_g (a registered arch and its arguments), freshly initialised, in
    eval mode on the CPU; with the TUR uncertainty head when `head`."""
    return build_network(dict(network_g, uncertainty_head=head)).eval()


def load_network(source: ModelSource, uncertainty: bool | None = False,
                 check_keys: KeyCheck | None = None) -> tuple[torch.nn.Module, str | None, str]:
    """(network in eval mode on the CPU with the weights of `source`, the checkpoint entry they
    came from, why that entry: see choose_param_key). uncertainty: True builds the network with
    its TUR head and refuses a checkpoint without one; None builds the head when the checkpoint
    has one; False never (inference does not need it). check_keys(state_dict, where): run before
    loading (default: the source's, a preset's key check). Raises FileNotFoundError, or the
    checkpoint's errors, one line, naming the weights file."""
    if not osp.isfile(source.weights):
        raise FileNotFoundError(f'weights not found: {source.weights} ({source.described})')
    ckpt = load_torch_file(source.weights, 'weights')
    key, why = choose_param_key(ckpt, source.param_key)
    state = unwrap_state_dict(ckpt, key, source.weights)
    check_keys = check_keys or source.check_keys
    if check_keys is not None:
        check_keys(state, source.weights)
    net = new_network(source.network_g, head=uncertainty is not False)
    # The file is read once: its tensors go to load_checkpoint.
    needs_head = '--uncertainty needs a checkpoint trained with TURLoss' if uncertainty else None
    head = load_checkpoint(net, source.weights, key, strict=True, require_head=needs_head,
                           state=state)
    if not head and uncertainty is None:  # no σ to show: the fresh head is dropped
        net.uncertainty_head = None
    return net, key, why


def load_restorer(source: ModelSource, device: str | None = None, precision: str = 'fp32',
                  tile: int | None = None, overlap: int = 32, channels_last: bool = False,
                  compile: bool = False, uncertainty: bool | None = False,
                  check_keys: KeyCheck | None = None, logger: logging.Logger | None = None,
                  tile_batch: int | None = None) -> Restorer:
    """Build the network of `source`, load its weights (load_network: EMA preferred, logged) and
    return a Restorer on `device` (pick_device). uncertainty and check_keys: as load_network.
    tile_batch: tiles per forward call (None: default_tile_batch for the device)."""
    logger = logger or get_root_logger()
    net, key, why = load_network(source, uncertainty, check_keys)
    target = pick_device(device)
    if channels_last:
        for tensor in list(net.parameters()) + list(net.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    net = net.to(target).eval()
    for note in source.notes:  # numeric strings in the options read as numbers
        logger.info(f'{source.described}: {note}')
    arch = source.network_g['type']
    restorer = Restorer(net, target, precision, tile, overlap, channels_last, compile,
                        f'{arch} ({source.weights})', input_channels(source.network_g), tile_batch,
                        source.padding)
    tiles = (f', tiles {tile} (overlap {overlap}, {restorer.tile_batch} per forward)' if tile
             else ', whole images')
    logger.info(f'{source.described}: {arch} from {source.weights}, weights {why}; '
                f'device {target}, {precision}{tiles}')
    restorer.param_key = key
    return restorer
