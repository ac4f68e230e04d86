"""Test-time padding: the whole input padded before the forward and the outputs cropped back, as
the test code behind some published rows does (TURModel.test reads it from `val.pad`).

The border a network sees changes the restored pixels inside the image (attention windows,
PromptIR's pooled prompt weights, every convolution near the edge), so a row is reproduced only
with its own padding:
- MiOIR's `Uformer` model (Xiangtaokong/MiOIR basicsr/models/ir_model.py, `Uformer.test`) and
  TUR's `IRModel_Uformer_uncertainty` (Aitical/TUR
  basicsr/models/IRModel_uformer_uncertainty_model.py, 5d026e7 to 768b8c1): reflect at the
  bottom/right to multiples of 128, then reflect the shorter side on both ends by half the
  difference to a square; the output is cropped back:
  `{multiple: 128, square: true, mode: reflect}`.
- TUR's `PromptIR_uncertainty` model (Aitical/TUR basicsr/models/promptIR_uncertainty_model.py,
  `test`): reflect at the bottom/right to multiples of 64, output cropped back:
  `{multiple: 64, mode: reflect}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from basicsr_tur.utils.errors import UserError

# torch.nn.functional.pad's modes: mirror without repeating the edge, repeat the edge, zeros.
PAD_MODES = ('reflect', 'replicate', 'constant')


@dataclass(frozen=True)
class InputPadding:
    """How test() pads an input (N, C, H, W), and where the image sits in the padded one.

    multiple: H and W are padded at the bottom/right up to multiples of it (1: not padded).
    square: then the shorter side is padded on both ends to the longer one's length, half before
        and half after (the odd pixel, if any, after; the official rule pads an even difference).
    mode: torch.nn.functional.pad's mode of both steps ('constant' pads zeros).
    """
    multiple: int = 1
    square: bool = False
    mode: str = 'reflect'

    def pads(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """((bottom, right) of the first step, (left, right, top, bottom) of the square step)."""
        bottom, right = -height % self.multiple, -width % self.multiple
        h, w = height + bottom, width + right
        long = max(h, w) if self.square else 0
        dh, dw = max(long - h, 0), max(long - w, 0)
        return (bottom, right), (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """x (N, C, H, W) padded, and the (top, left) of the image in it.

        Two F.pad calls, in the official order (the square step reflects the first step's border).
        Raises ValueError naming val.pad.mode when reflection would mirror more than the side
        minus one pixel (F.pad's limit).
        """
        height, width = x.shape[-2:]
        (bottom, right), (left, right2, top, bottom2) = self.pads(height, width)
        steps = (((bottom, right), (height, width)),
                 ((max(top, bottom2), max(left, right2)), (height + bottom, width + right)))
        for (rows, columns), (h, w) in steps:
            if self.mode == 'reflect' and (rows >= h or columns >= w):
                raise UserError(f'val.pad.mode: reflect cannot pad a {h}x{w} input by {rows} '
                                 f'rows / {columns} columns (at most the side minus 1; '
                                 f'{height}x{width} image, val.pad {self}); use replicate or '
                                 'constant')
        if bottom or right:
            x = F.pad(x, (0, right, 0, bottom), mode=self.mode)
        if left or right2 or top or bottom2:
            x = F.pad(x, (left, right2, top, bottom2), mode=self.mode)
        return x, (top, left)

    def __str__(self) -> str:
        square = str(self.square).lower()
        return f'{{multiple: {self.multiple}, square: {square}, mode: {self.mode}}}'


def crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The (N, C, height, width) window of x (N, C, H', W') at (top, left): the crop back."""
    return x[..., top:top + height, left:left + width]


def input_padding(value: Any, key: str = 'val.pad') -> InputPadding | None:
    """The InputPadding that the option `val.pad` asks for; None when it pads nothing (absent, null,
    {} or multiple 1 without square), so that test() then runs exactly as without the option.

    Raises ValueError naming the key at fault (`val.pad`, `val.pad.multiple`, ...) for a value that
    is not a mapping, an unknown key, a multiple that is not an integer >= 1, a square that is not
    true/false or a mode outside PAD_MODES.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserError(f'{key}: expected a mapping such as {{multiple: 128, square: true, '
                         f'mode: reflect}}, got {value!r}')
    known = ('multiple', 'square', 'mode')
    for name in value:
        if name not in known:
            raise UserError(f"{key}.{name}: unknown key (known: {', '.join(known)})")
    multiple, square = value.get('multiple', 1), value.get('square', False)
    mode = value.get('mode', 'reflect')
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise UserError(f'{key}.multiple: expected an integer >= 1, got {multiple!r}')
    if not isinstance(square, bool):
        raise UserError(f'{key}.square: expected true or false, got {square!r}')
    if mode not in PAD_MODES:
        raise UserError(f"{key}.mode: expected one of {', '.join(PAD_MODES)}, got {mode!r}")
    if multiple == 1 and not square:
        return None
    return InputPadding(multiple, square, mode)
