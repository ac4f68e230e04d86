"""SRResNet as used by MiOIR for all-in-one restoration: same-size output (upscale 1), residual blocks without BN.

State-dict keys match MiOIR's `SRResNet` (conv_first, body.N.conv1/conv2, conv_hr, conv_last), so its
checkpoints load with strict=True. The optional uncertainty head sits under `uncertainty_head.` where the authors'
`SRResNet_uncertanty_softplus` puts its `var_conv` (HEAD_SPECS['SRResNet']): on the residual body's output, before
conv_hr, initialised like the backbone's convolutions (kaiming-normal x 0.1); their TUR checkpoints load through
`checkpoint_filter_fn`.
"""
from __future__ import annotations

import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, default_init_weights, make_layer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_tur.archs.uncertainty import UncertaintyMixin, rename_authors_head
from basicsr_tur.utils.errors import UserError


@ARCH_REGISTRY.register()
class SRResNet(UncertaintyMixin, nn.Module):
    """SRResNet with a global residual: (B, num_in_ch, H, W) -> (B, num_out_ch, H, W).

    Args:
        num_in_ch: input channels. Default: 3.
        num_out_ch: output channels. Default: 3.
        num_feat: feature channels. Default: 64.
        num_block: residual blocks. Default: 16.
        upscale: only 1 (restoration at the input's size), as in MiOIR. Default: 1.
        uncertainty_head: add the TUR uncertainty head on the residual body's output. Default: False.
        uncertainty_detach: the head reads the body's output detached, so the σ term of TURLoss never reaches the
            backbone. Default: False (the authors'). Measured (bench/head_curve.py, 3 seeds): on this SRResNet
            (num_feat 16, num_block 16, noise only, batch 4, 64² patches, Adam 2e-3) the attached head keeps TUR at
            the identity for 100 to about 500 steps (20.96 dB at 300 steps, L1 26.91 dB; 27.33 dB at 1500, L1
            28.49 dB), the detached head learns at once (26.24 dB at 300, 28.27 dB at 1500); see
            basicsr_tur/archs/uncertainty.py and BENCHMARKS.md.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 1, uncertainty_head: bool = False, uncertainty_detach: bool = False) -> None:
        super().__init__()
        if upscale != 1:
            raise UserError(f'SRResNet: upscale must be 1 for all-in-one restoration (MiOIR), got {upscale}')
        if num_in_ch != num_out_ch:
            raise UserError(f'SRResNet: the global residual needs num_in_ch == num_out_ch, '
                             f'got {num_in_ch} and {num_out_ch}')
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        default_init_weights([self.conv_first, self.conv_hr, self.conv_last], 0.1)
        self._init_uncertainty('SRResNet', uncertainty_head, uncertainty_detach, num_out_ch)

    @staticmethod
    def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
        """Map the authors' TUR checkpoint (`SRResNet_uncertanty_softplus`: head `var_conv.*`) to our keys."""
        return rename_authors_head(state_dict, 'SRResNet')

    def forward(self, x: torch.Tensor,
                with_uncertainty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore x; with_uncertainty=True also returns the uncertainty map (B, num_out_ch, H, W)."""
        feat = self.body(self.lrelu(self.conv_first(x)))
        out = self.conv_last(self.lrelu(self.conv_hr(feat))) + x
        return self._restore_output(out, feat, with_uncertainty)
