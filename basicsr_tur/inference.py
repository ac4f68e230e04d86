"""Restore anyone's images: a model from an options file, an arch and weights, or a preset; any 8/16-bit image; whole
or tile by tile; at fp32, bf16 or fp16; with TUR's per-pixel uncertainty σ when the checkpoint has the head.

Used by restore.py (the command), app.py (the web page) and scripts/export_onnx.py. The network sees what it was
trained on: RGB, float in [0, 1], (1, 3, H, W). A gray image is restored as three equal channels and written back as
gray (luma of the result); an alpha channel is passed through untouched; 16-bit images are restored from and
written to 16 bits. A one-channel network (e.g. Restormer's gray denoiser) gets the luma of a colour image and
returns gray.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.utils import get_root_logger

from basicsr_tur.data.data_util import divide_exactly
from basicsr_tur.utils.checkpoint import load_checkpoint, load_torch_file, unwrap_state_dict
from basicsr_tur.utils.memory import out_of_memory_error
from basicsr_tur.utils.option_checks import check_network_options
from basicsr_tur.utils.option_file import OptionError, load_yaml, resolve
from basicsr_tur.utils.padding import InputPadding, crop, input_padding
from basicsr_tur.utils.precision import warn_slow_precision
from basicsr_tur.utils.tiling import check_tile, tile_count, tiled_forward

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# Orientation tag of EXIF (0x0112) -> how to turn the stored pixels upright (TIFF/EXIF 2.3, section 4.6.4).
_EXIF_ORIENTATION = 0x0112


def read_image(path: str) -> np.ndarray:
    """An image file as stored, made upright by its EXIF orientation: uint8 or uint16, (H, W) gray, (H, W, 2) gray +
    alpha, (H, W, 3) BGR or (H, W, 4) BGRA. Raises ValueError (one line) for a file OpenCV cannot read."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # UNCHANGED keeps 16 bits and alpha, and ignores EXIF
    if img is None:
        raise ValueError(f'{path}: not an image OpenCV can read (missing, empty, truncated or another format)')
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{path}: {img.dtype} pixels; restore.py reads 8-bit and 16-bit images')
    return apply_exif_orientation(img, exif_orientation(path))


def exif_orientation(path: str) -> int:
    """The EXIF orientation (1..8) of an image file, 1 when it has none (Pillow reads the header only)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a format Pillow does not know has no EXIF we could read
        return 1
    return value if value in range(1, 9) else 1


def apply_exif_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> upright, for EXIF orientation 1..8 (2: mirrored, 3: 180°, 6: 90° clockwise, ...)."""
    if orientation in (5, 6, 7, 8):
        img = np.swapaxes(img, 0, 1)  # transpose; then the flips below finish the rotation
    flips = {2: (False, True), 3: (True, True), 4: (True, False), 5: (False, False), 6: (False, True),
             7: (True, True), 8: (True, False)}.get(orientation, (False, False))
    if flips[0]:
        img = img[::-1]
    if flips[1]:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


@dataclass
class Staged:
    """An image ready to go to the device (Restorer.stage).

    img: as read_image returns it. pixels: its colour or gray channels as a uint8/uint16 (H, W, C)
    host tensor, pinned when the device is CUDA (so that the copy runs asynchronously). order: the
    channels of `pixels` that make the network's input, RGB or gray. alpha: (H, W) or None. peak:
    255 or 65535.
    """

    img: np.ndarray
    pixels: torch.Tensor
    order: tuple[int, ...]
    alpha: np.ndarray | None
    peak: float


def stage_image(img: np.ndarray, channels: int = 3, pin: bool = False) -> Staged:
    """An image as read_image returns it, staged for a network of `channels` input channels (3:
    RGB, 1: gray): alpha set aside, a gray image's channel used three times, a colour image's luma
    for a gray network. Nothing becomes float here: that happens once, on the device (to_input)."""
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    body, alpha = img, None
    if img.ndim == 3 and img.shape[2] in (2, 4):
        body, alpha = img[..., :-1], img[..., -1]
    if body.ndim == 3 and body.shape[2] == 1:
        body = body[..., 0]
    if channels == 1 and body.ndim == 3:
        body = cv2.cvtColor(np.ascontiguousarray(body), cv2.COLOR_BGR2GRAY)
    order = (0,) if channels == 1 else (0, 0, 0) if body.ndim == 2 else (2, 1, 0)  # BGR -> RGB
    pixels = torch.from_numpy(body if body.ndim == 3 else body[..., None])
    return Staged(img, pixels.pin_memory() if pin else pixels, order, alpha, peak)


def to_input(staged: Staged, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """The network's input (1, C, H, W) float32 in [0, 1] on `device`, from a staged image: the
    integers cross to the device (a quarter of the float bytes at 8 bits) and become float there,
    in one pass per channel."""
    src = staged.pixels.to(device, non_blocking=True)
    height, width = src.shape[:2]
    x = torch.empty((1, len(staged.order), height, width), device=device,
                    memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for i, c in enumerate(staged.order):
        x[0, i].copy_(src[..., c])
    return divide_exactly(x, staged.peak, inplace=True)  # the CPU's division on every device


def to_image(out: torch.Tensor, staged: Staged) -> np.ndarray:
    """The restored (1, 3, H, W) tensor (on any device; changed in place) as an image of the staged
    image's kind: its dtype, gray or BGR, its alpha put back; a (1, 1, H, W) output is gray.
    Clamped, scaled and rounded on the device, so that integers, not floats, cross to the host."""
    like = staged.img
    y = out[0].float().clamp_(0, 1).mul_(staged.peak).round_()
    channels, height, width = y.shape
    pixels = torch.empty((height, width, channels), device=y.device,
                         dtype=torch.uint16 if like.dtype == np.uint16 else torch.uint8)
    for i in range(channels):
        pixels[..., i].copy_(y[channels - 1 - i])  # RGB -> BGR (OpenCV's order)
    pixels = pixels.cpu().numpy()
    if channels == 1:
        img = pixels[..., 0]
    else:
        gray = like.ndim == 2 or like.shape[2] in (1, 2)
        img = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if gray else pixels
    if staged.alpha is not None:  # OpenCV writes no gray + alpha: gray + alpha is written as BGRA
        img = np.concatenate([img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR),
                              staged.alpha[..., None]], axis=2)
    return img


@dataclass
class Restored:
    """One restored image: `image` of the input's kind (dtype, channels, alpha); `sigma` (H, W) float32, the TUR
    head's σ averaged over the colour channels, on the [0, 1] intensity scale, or None; `tiles` run."""

    image: np.ndarray
    sigma: np.ndarray | None
    tiles: int = 1


@dataclass
class ModelSource:
    """Where a model comes from: its network_g options, weights file, the key chosen in it and why
    (for the log), and the test-time padding of an options file (`val.pad`, utils/padding.py;
    None: none)."""

    network_g: dict
    weights: str
    param_key: str | None
    described: str
    notes: list[str] = field(default_factory=list)
    padding: InputPadding | None = None


def choose_param_key(ckpt: object, requested: str | None) -> tuple[str | None, str]:
    """(key, why) of the weights to load from a checkpoint: `requested` when the file has it, else the EMA weights
    `params_ema` when the file has them, else `params`, else the file's own layout (None: unwrap_state_dict finds
    it). A requested key the file lacks falls back like this, as test.py's loading does (checkpoint.read_state_dict),
    and `why` says so."""
    keys = list(ckpt) if isinstance(ckpt, dict) else []
    if requested and requested in keys:
        return requested, f'{requested} (as asked)'
    missing = f"; the file has no '{requested}'" if requested else ''
    for key, why in (('params_ema', 'params_ema (the EMA weights, preferred when present'),
                     ('params', 'params (no EMA weights in the file')):
        if key in keys and isinstance(ckpt[key], dict):
            return key, f'{why}{missing})'
    return None, f"the file's own layout (no params_ema/params entry{missing})"


def source_from_options(opt_path: str, weights: str | None = None, root: str = '.') -> ModelSource:
    """network_g, the weights (path.pretrain_network_g, relative to `root`, unless `weights` is
    given), path.param_key_g and val.pad (the test-time padding test.py applies) of a test options
    file. Only these keys are read; network_g is checked against the arch's constructor. Raises
    OptionError (one line) naming the file and key at fault."""
    opt = load_yaml(opt_path)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        raise OptionError(f"{opt_path}: required key 'network_g' is missing (restore.py reads network_g and path)")
    network_g = dict(opt['network_g'])
    notes = check_network_options(network_g, opt_path)
    path_opt = opt.get('path') or {}
    if weights is None:
        if not path_opt.get('pretrain_network_g'):
            raise OptionError(f"{opt_path}: 'path.pretrain_network_g' is not set; give the weights with --weights")
        weights = resolve(str(path_opt['pretrain_network_g']), root)  # as test.py resolves it
    val = opt.get('val') if isinstance(opt.get('val'), dict) else {}
    try:  # as TURModel reads it, so that the same file restores the same pixels here
        padding = input_padding(val.get('pad'))
    except ValueError as err:
        raise OptionError(f'{opt_path}: {err}') from None
    return ModelSource(network_g, weights, path_opt.get('param_key_g'), opt_path, notes, padding)


def source_from_arch(arch: str, arch_opt: dict, weights: str, param_key: str | None = None) -> ModelSource:
    """A model given on the command line: a registered arch, its constructor arguments and a weights file."""
    network_g = {'type': arch, **arch_opt}
    notes = check_network_options(network_g, '--arch/--arch-opt')
    return ModelSource(network_g, weights, param_key, f'--arch {arch}', notes)


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
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        if tile is not None:
            check_tile(tile, overlap, ('--tile', '--tile-overlap'))
        if tile_batch is not None and tile_batch < 1:
            raise ValueError(f'--tile-batch must be >= 1, got {tile_batch}')
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
        ValueError naming `name` when the padding cannot pad x (reflection's limit)."""
        if uncertainty and not self.has_head:
            raise ValueError(f'{self.described}: the network has no TUR uncertainty head, so there '
                             'is no σ map')
        padded, (top, left) = x, (0, 0)
        if self.padding:
            try:
                padded, (top, left) = self.padding.pad(x)
            except ValueError as err:
                raise ValueError(f'{name}: {err}') from None
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

    def _host_oom(self, name: str, img: np.ndarray) -> RuntimeError:
        size = f'{img.shape[0]}x{img.shape[1]}'
        return RuntimeError(f'restore: out of memory restoring {name} ({size}) on the host; '
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
        --tile-batch when the device runs out of memory; ValueError for uncertainty=True without
        the head.
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
    """'cpu', 'cuda' or 'cuda:N' (None: CUDA when available, else the CPU); ValueError (one line) for a device
    this machine lacks."""
    if name is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device: expected cpu, cuda or cuda:N, got '{name}'") from None
    if device.type == 'cuda':
        count = torch.cuda.device_count()
        if count == 0 or (device.index or 0) >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s); use --device cpu")
    elif device.type != 'cpu':
        raise ValueError(f"--device: expected cpu, cuda or cuda:N, got '{name}'")
    return device


def input_channels(network_g: dict) -> int:
    """The input channels a network_g takes, under each backbone's official argument name (3 where it says none)."""
    return next((int(network_g[k]) for k in ('inp_channels', 'num_in_ch', 'dd_in') if k in network_g), 3)


def load_restorer(source: ModelSource, device: str | None = None, precision: str = 'fp32', tile: int | None = None,
                  overlap: int = 32, channels_last: bool = False, compile: bool = False,
                  uncertainty: bool | None = False,
                  check_keys=None, logger: logging.Logger | None = None,
                  tile_batch: int | None = None) -> Restorer:
    """Build the network of `source`, load its weights (EMA preferred, see choose_param_key; logged) and return a
    Restorer. uncertainty: True builds the network with its TUR head and refuses a checkpoint without one; None
    builds the head when the checkpoint has one; False never (inference does not need it).
    check_keys(state_dict, where): a preset's key check, run before loading. Raises FileNotFoundError, ValueError
    or KeyError, one line, naming the weights file.
    tile_batch: tiles per forward call (None: default_tile_batch for the device)."""
    logger = logger or get_root_logger()
    if not osp.isfile(source.weights):
        raise FileNotFoundError(f'weights not found: {source.weights} ({source.described})')
    ckpt = load_torch_file(source.weights, 'weights')
    key, why = choose_param_key(ckpt, source.param_key)
    state = unwrap_state_dict(ckpt, key, source.weights)
    if check_keys is not None:
        check_keys(state, source.weights)
    network_g = dict(source.network_g, uncertainty_head=uncertainty is not False)
    net = build_network(network_g)
    # The file is read once: its tensors go to load_checkpoint.
    head = load_checkpoint(net, source.weights, key, strict=True, require_head='--uncertainty needs a checkpoint '
                           'trained with TURLoss' if uncertainty else None, state=state)
    if not head and uncertainty is None:  # no σ to show: the fresh head is dropped
        net.uncertainty_head = None
    target = pick_device(device)
    if channels_last:
        for tensor in list(net.parameters()) + list(net.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    net = net.to(target).eval()
    for note in source.notes:  # numeric strings in the options read as numbers
        logger.info(f'{source.described}: {note}')
    in_channels = input_channels(network_g)
    restorer = Restorer(net, target, precision, tile, overlap, channels_last, compile,
                        f'{network_g["type"]} ({source.weights})', in_channels, tile_batch,
                        source.padding)
    tiles = (f', tiles {tile} (overlap {overlap}, {restorer.tile_batch} per forward)' if tile
             else ', whole images')
    logger.info(f'{source.described}: {network_g["type"]} from {source.weights}, weights {why}; '
                f'device {target}, {precision}{tiles}')
    restorer.param_key = key
    return restorer
