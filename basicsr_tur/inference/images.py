"""Images in and out of a network: read any 8/16-bit file upright, stage it for the device, turn
the output back into an image of the input's kind.

The network sees what it was trained on: RGB, float in [0, 1], (1, 3, H, W). A gray image is
restored as three equal channels and written back as gray (luma of the result); an alpha channel
is passed through untouched; 16-bit images are restored from and written to 16 bits. A one-channel
network (e.g. Restormer's gray denoiser) gets the luma of a colour image and returns gray.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from basicsr_tur.data.data_util import divide_exactly
from basicsr_tur.utils.errors import DataError

# Orientation tag of EXIF (0x0112) -> how to turn the stored pixels upright (TIFF/EXIF 2.3,
# section 4.6.4).
_EXIF_ORIENTATION = 0x0112


def read_image(path: str) -> np.ndarray:
    """An image file as stored, made upright by its EXIF orientation: uint8 or uint16, (H, W)
    gray, (H, W, 2) gray + alpha, (H, W, 3) BGR or (H, W, 4) BGRA. Raises DataError (one line) for
    a file OpenCV cannot read."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # UNCHANGED keeps 16 bits and alpha, ignores EXIF
    if img is None:
        raise DataError(f'{path}: not an image OpenCV can read (missing, empty, truncated or '
                        'another format)')
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f'{path}: {img.dtype} pixels; restore.py reads 8-bit and 16-bit images')
    return apply_exif_orientation(img, exif_orientation(path))


def exif_orientation(path: str) -> int:
    """The EXIF orientation (1..8) of an image file, 1 when it has none (Pillow reads the header
    only)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a format Pillow does not know has no EXIF we could read
        return 1
    return value if value in range(1, 9) else 1


def apply_exif_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> upright, for EXIF orientation 1..8 (2: mirrored, 3: 180°, 6: 90°
    clockwise, ...)."""
    if orientation in (5, 6, 7, 8):
        img = np.swapaxes(img, 0, 1)  # transpose; then the flips below finish the rotation
    flips = {2: (False, True), 3: (True, True), 4: (True, False), 5: (False, False),
             6: (False, True), 7: (True, True), 8: (True, False)}.get(orientation, (False, False))
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
