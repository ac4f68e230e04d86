"""Tiled inference: run a restoration network on an image of any size in bounded memory, tile by tile, blended
without seams. One tiler serves test.py (`val.tile: {size, overlap}`) and restore.py (`--tile`, `--tile-overlap`).

Layout. Along each axis of length L, a side of `tile` pixels (rounded up to the backbone's size multiple) is placed
n = ceil((L - overlap) / (tile - overlap)) times, the starts spread evenly from 0 to L - tile, so that neighbours
overlap by at least `overlap` pixels and the last tile ends exactly at the border (no tile is padded). A side no
longer than the tile is not cut.

Blending. Each tile's output is weighted per pixel by a separable window and the weighted sum is divided by the sum
of the weights. Across an overlap of width o with a neighbour, the window is 0 over the quarter of the overlap
nearest the tile's edge, rises as a raised cosine (Hann half-window) over the middle half, and is 1 beyond; at the
image border it is 1 (the border is the image's own, not the tile's). The two neighbours' windows sum to 1 across
their overlap, so no seam is visible; and the quarter next to each cut edge, where the tile's output sees the cut
(zero padding, attention over a smaller window), is never used.

Exactness. A pixel of a purely convolutional network's output depends on the input within its receptive-field
radius r. A tile's output there is exact when the pixel is at least r pixels from the tile's cut edges; the window
gives weight only to pixels at least overlap/4 from a cut edge, so with overlap >= 4r (about twice the receptive
field's width) tiled and whole-image outputs agree up to float rounding (tests/test_tiling.py checks 1e-5). Attention
backbones (Restormer's channel attention, Uformer's windows past the tile) see less context per tile: their tiled
output differs from the whole-image one; BENCHMARKS.md ("Restore", tiled against whole) gives the PSNR between the two.

The overlap-and-window scheme is the usual one of the field's tiled inference (e.g. Real-ESRGAN's `tile_pad`,
SwinIR/KAIR's `test_tile` accumulation with a weight map); the quarter-margin raised cosine is ours, chosen so that
the exactness above holds.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from basicsr_tur.utils.errors import UserError

Outputs = torch.Tensor | tuple[torch.Tensor, ...]


def check_tile(tile: int, overlap: int, names: tuple[str, str] = ('tile size', 'tile overlap')) -> None:
    """ValueError (one line, using `names` for the two values) unless tile >= 1 and 0 <= overlap < tile."""
    if tile < 1:
        raise UserError(f'{names[0]} must be >= 1, got {tile}')
    if not 0 <= overlap < tile:
        raise UserError(f'{names[1]} must be >= 0 and smaller than the {names[0]} ({tile}), got {overlap}')


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles covering [0, length) with tiles of `tile` pixels overlapping by at least `overlap`.

    Raises ValueError when overlap >= tile (the tiles would not advance) or a value is negative.
    """
    if length <= tile and tile >= 1 and overlap >= 0:
        return [0]
    check_tile(tile, overlap)
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(width: int, device: torch.device) -> torch.Tensor:
    """Weights 0 -> 1 across an overlap of `width` pixels: 0 on the first quarter, raised cosine over the middle
    half, 1 on the last quarter. ramp + ramp.flip(0) == 1 (neighbours' windows sum to 1)."""
    margin = width // 4
    rise = width - 2 * margin
    pos = torch.arange(width, device=device, dtype=torch.float64) - margin + 0.5
    ramp = 0.5 - 0.5 * torch.cos(math.pi * pos.clamp(0, rise) / rise)
    return ramp.float()


def axis_windows(length: int, tile: int, overlap: int, device: torch.device | str = 'cpu'
                 ) -> list[tuple[int, int, torch.Tensor]]:
    """(start, size, window (size,)) of each tile along one axis; the windows' sum is > 0 at every pixel."""
    device = torch.device(device)
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    out = []
    for i, start in enumerate(starts):
        window = torch.ones(size, device=device)
        if i > 0:  # cut edge on the left: the overlap with the previous tile
            width = starts[i - 1] + size - start
            if width > 0:
                window[:width] *= _ramp(width, device)
        if i < len(starts) - 1:  # cut edge on the right
            width = start + size - starts[i + 1]
            if width > 0:
                window[size - width:] *= _ramp(width, device).flip(0)
        out.append((start, size, window))
    return out


def round_tile(tile: int, multiple: int) -> int:
    """`tile` rounded up to a multiple of the backbone's size multiple (so that no tile is padded inside it)."""
    return -(-tile // max(1, multiple)) * max(1, multiple)


def tile_count(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """How many tiles tiled_forward runs on a height x width image (1: the image is not cut)."""
    tile = round_tile(tile, multiple)
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def tiled_forward(forward: Callable[[torch.Tensor], Outputs], x: torch.Tensor, tile: int,
                  overlap: int = 32, multiple: int = 1,
                  progress: Callable[[int], object] | None = None, batch: int = 1) -> Outputs:
    """forward(x) computed tile by tile and blended (see the module docstring); same type as
    forward's result.

    forward: maps (N, C, h, w) to a tensor (N, C', h, w) or a tuple of such tensors (e.g. restored
        and σ); its output must have the input's height and width. x: (N, C, H, W). tile: the
        tiles' side in pixels, rounded up to `multiple` (the backbone's `size_multiple`; its
        internal padding is then never needed); overlap: the minimum overlap of neighbouring tiles
        in pixels.
    batch: tiles per forward call, stacked along the batch dimension as (batch * N, C, h, w) (all
        tiles have one size; the last call may hold fewer). The blend does not depend on it, so a
        network that treats the samples of a batch independently (eval mode) gives the batch-1
        result up to float rounding (its kernels may pick other algorithms for another batch size).
    progress: called after each forward call with the number of tiles it ran (e.g. tqdm.update).
    An image no larger than the tile is passed to forward whole. Accumulation is in float32 on x's
    device; the result has the dtype of forward's outputs. Raises ValueError for overlap >= tile,
    batch < 1, or when forward changes the size (a super-resolution network).
    """
    if batch < 1:
        raise UserError(f'tiles per forward (batch) must be >= 1, got {batch}')
    tile = round_tile(tile, multiple)
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        result = forward(x)
        if progress is not None:
            progress(1)
        return result
    rows = axis_windows(height, tile, overlap, x.device)
    cols = axis_windows(width, tile, overlap, x.device)
    places = [(top, left, row_window, col_window)
              for top, _, row_window in rows for left, _, col_window in cols]
    h, w = rows[0][1], cols[0][1]  # every tile has this size (axis_windows)
    n = x.shape[0]
    sums: list[torch.Tensor] | None = None
    weight = torch.zeros(height, width, device=x.device)
    single, dtypes = True, []
    for first in range(0, len(places), batch):
        group = places[first:first + batch]
        crops = [x[..., top:top + h, left:left + w] for top, left, _, _ in group]
        outputs = forward(crops[0] if len(crops) == 1 else torch.cat(crops))
        single = isinstance(outputs, torch.Tensor)
        outputs = (outputs,) if single else tuple(outputs)
        if any(o.shape[-2:] != (h, w) for o in outputs):
            sizes = ', '.join('x'.join(map(str, o.shape[-2:])) for o in outputs)
            raise UserError(f'tiled inference needs an output of the input size; a {h}x{w} tile '
                             f'gave {sizes}')
        if sums is None:
            sums = [torch.zeros(n, *o.shape[1:-2], height, width, device=x.device) for o in outputs]
            dtypes = [o.dtype for o in outputs]
        # Tile i of the call is samples i*N .. i*N+N-1; each is weighted as in a batch-1 call and
        # added in the same raster order, so the blend is bit for bit batch 1's, given the same
        # outputs.
        windows = torch.stack([row[:, None] * col[None, :] for _, _, row, col in group])
        weighted = [o.float().unflatten(0, (len(group), n)) * windows[:, None, None]
                    for o in outputs]
        for i, (top, left, _, _) in enumerate(group):
            for total, out in zip(sums, weighted):
                total[..., top:top + h, left:left + w] += out[i]
            weight[top:top + h, left:left + w] += windows[i]
        if progress is not None:
            progress(len(group))
    blended = []
    for total, dtype in zip(sums, dtypes):
        total /= weight  # in place: a second image-sized buffer would cost as much again
        blended.append(total.to(dtype))
    return blended[0] if single else tuple(blended)
