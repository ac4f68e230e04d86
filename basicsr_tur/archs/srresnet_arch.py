"""SRResNet as used by MiOIR for all-in-one restoration: same-size output (upscale 1), residual blocks without BN.

State-dict keys match MiOIR's `SRResNet` (conv_first, body.N.conv1/conv2, conv_hr, conv_last), so its
checkpoints load with strict=True; the optional uncertainty head sits under `uncertainty_head.`.
"""
from __future__ import annotations

import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, default_init_weights, make_layer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_tur.archs.uncertainty import UncertaintyMixin


@ARCH_REGISTRY.register()
class SRResNet(UncertaintyMixin, nn.Module):
    """SRResNet with a global residual: (B, num_in_ch, H, W) -> (B, num_out_ch, H, W).

    Args:
        num_in_ch: input channels. Default: 3.
        num_out_ch: output channels. Default: 3.
        num_feat: feature channels. Default: 64.
        num_block: residual blocks. Default: 16.
        upscale: only 1 (restoration at the input's size), as in MiOIR. Default: 1.
        uncertainty_head: add the TUR uncertainty head on the last feature map. Default: False.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 1, uncertainty_head: bool = False) -> None:
        super().__init__()
        if upscale != 1:
            raise ValueError(f'SRResNet: upscale must be 1 for all-in-one restoration (MiOIR), got {upscale}')
        if num_in_ch != num_out_ch:
            raise ValueError(f'SRResNet: the global residual needs num_in_ch == num_out_ch, '
                             f'got {num_in_ch} and {num_out_ch}')
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        default_init_weights([self.conv_first, self.conv_hr, self.conv_last], 0.1)
        self._init_uncertainty(uncertainty_head, num_feat, num_out_ch)

    def forward(self, x: torch.Tensor,
                with_uncertainty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore x; with_uncertainty=True also returns the uncertainty map (B, num_out_ch, H, W)."""
        feat = self.lrelu(self.conv_hr(self.body(self.lrelu(self.conv_first(x)))))
        out = self.conv_last(feat) + x
        return self._restore_output(out, feat, with_uncertainty)
