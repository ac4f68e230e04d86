"""The TUR uncertainty head, shared by every backbone, and where each backbone puts it (`HEAD_SPECS`).

The head is conv3×3 – ELU – conv3×3 – ELU – conv3×3 – softplus on one feature map of the backbone, as the authors'
`var_conv` (Aitical/TUR). It lives under its own `uncertainty_head.` key prefix, so a plain backbone checkpoint
loads into a model with the head (only the head's keys missing) and the head is never run at inference.

`HEAD_SPECS` is the one place that says, per backbone, which feature map the head reads (`tap`: the convolution
whose *input* is that map), how the head is initialised, and whether the placement is the authors' or ours. The
backbones build their head from it (`UncertaintyMixin._init_uncertainty` takes the head's width from the tap's
`in_channels` and applies the declared init), their `checkpoint_filter_fn` maps the authors' head keys with
`authors_key`, and tests/test_archs.py checks with forward hooks that the head reads the declared tap.

`uncertainty_detach` (constructor argument of every backbone, default False as in the authors' code): the head reads
`feat.detach()`, so the log-σ term of TURLoss trains the head alone and never reaches the shared features.
Measured motivation (`bench/head_curve.py`, BENCHMARKS.md "Where the TUR head reads": SRResNet num_feat 16,
num_block 16, noise task only, batch 4, 64² patches, Adam lr 2e-3, one CPU thread, 3 seeds): with the authors'
attached head, TUR keeps the restored output at its input for the first 100 steps on every seed and about 500 on one
(test PSNR 20.96 dB after 300 steps, where plain L1 reaches 26.91 dB from 20.06) and ends 1.2 dB behind L1 after
1500 steps (27.33 against 28.49 dB); with the detached head it learns at once (26.24 dB after 300 steps, 28.27 dB
after 1500).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from basicsr.archs.arch_util import default_init_weights
from torch import nn

from basicsr_tur.utils.checkpoint import HEAD_PREFIX

__all__ = ['HEAD_PREFIX', 'HEAD_SPECS', 'HeadSpec', 'UncertaintyHead', 'UncertaintyMixin', 'rename_authors_head']

INITS = ('torch_default', 'kaiming_normal_x0.1')


@dataclass(frozen=True)
class HeadSpec:
    """Where one backbone's uncertainty head reads and how it starts.

    tap: dotted name of the convolution whose input the head reads (the head's width is its `in_channels`).
    feature: that feature map, in words.
    init: 'torch_default' (nn.Conv2d's own kaiming-uniform init) or 'kaiming_normal_x0.1' (basicsr's
        `default_init_weights(head, 0.1)`: kaiming-normal weights scaled by 0.1, zero biases).
    source: the authors' file and class the placement and init come from, or why there is none.
    authors: True where the placement is the authors', False where it is our extension.
    authors_key: key prefix of the head in the authors' TUR checkpoints (None: they have none).
    """

    tap: str
    feature: str
    init: str
    source: str
    authors: bool
    authors_key: str | None


HEAD_SPECS: dict[str, HeadSpec] = {
    'SRResNet': HeadSpec(
        tap='conv_hr', feature='output of the residual body (num_feat channels), before conv_hr and its LeakyReLU',
        init='kaiming_normal_x0.1',
        source='Aitical/TUR 18b495b basicsr/archs/srresnet_uncetainty_arch.py, SRResNet_uncertanty_softplus',
        authors=True, authors_key='var_conv.'),
    'Uformer': HeadSpec(
        tap='output_proj.proj.0', feature='decoder output deconv3 (2*embed_dim channels), before output_proj',
        init='torch_default',
        source='Aitical/TUR 18b495b basicsr/archs/uformer_uncertainty_arch.py, Uformer_uncertainty',
        authors=True, authors_key='var_conv.'),
    'AirNet': HeadSpec(
        tap='R.tail.0', feature='DGRN body output plus the head skip (res, 64 channels), before the tail conv',
        init='torch_default',
        source='Aitical/TUR 18b495b basicsr/archs/airnet_arch.py AirNet_uncertainty, airnet/DGRN.py DGRN_uncertainty',
        authors=True, authors_key='R.var_conv.'),
    'PromptIR': HeadSpec(
        tap='output', feature='refined full-resolution features (2*dim channels), before the output conv',
        init='torch_default',
        source='Aitical/TUR 18b495b basicsr/archs/PromptIR_uncertainty_arch.py, PromptIR_uncertainty (its forward '
               'cannot run; the input of its var_conv is fixed here, see PromptIR)',
        authors=True, authors_key='var_conv.'),
    'Restormer': HeadSpec(
        tap='output', feature='refined full-resolution features (2*dim channels), before the output conv',
        init='torch_default',
        source='none: the authors have no TUR Restormer; placed as for PromptIR, which shares its decoder',
        authors=False, authors_key=None),
    'Transweather': HeadSpec(
        tap='clean.conv2d', feature='8-channel full-resolution output of convtail, before clean',
        init='torch_default',
        source='Aitical/TUR 5d026e7 basicsr/archs/transweather_arch.py, Transweather(if_uncertainty=True)',
        authors=True, authors_key='var_conv.'),
}


class UncertaintyHead(nn.Sequential):
    """Map features (B, num_feat, H, W) to a strictly positive uncertainty map (B, num_out_ch, H, W)."""

    def __init__(self, num_feat: int, num_out_ch: int = 3) -> None:
        super().__init__(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ELU(),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ELU(),
            nn.Conv2d(num_feat, num_out_ch, 3, 1, 1), nn.Softplus())


def rename_authors_head(state_dict: dict, arch: str) -> dict:
    """Rename the authors' head keys of `arch` (HEAD_SPECS[arch].authors_key, e.g. `var_conv.`) to `uncertainty_head.`.

    The authors' `var_conv` is the same Sequential as UncertaintyHead (indices 0, 2, 4), so only the prefix changes.
    """
    prefix = HEAD_SPECS[arch].authors_key
    if prefix is None:
        return state_dict
    return {(HEAD_PREFIX + k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


class UncertaintyMixin:
    """Gives a backbone an optional uncertainty head and one way to return (restored, uncertainty).

    A backbone calls `_init_uncertainty(arch, ...)` at the end of its constructor and ends its forward with
    `return self._restore_output(out, feat, with_uncertainty)`, feat being the input of HEAD_SPECS[arch].tap;
    `net(x)` then always returns exactly the backbone's output, and `net(x, with_uncertainty=True)` also returns the
    head's map from the same forward pass.
    """

    uncertainty_head: nn.Module | None
    uncertainty_detach: bool
    # Input sides that the backbone runs on without padding inside its forward (which pads other sizes and crops
    # back): tiled inference (utils/tiling.py) rounds its tiles up to it. 1 for a purely convolutional backbone.
    size_multiple: int = 1
    # State-dict prefixes of parameters that `net(x)` never reaches: modules the official code builds but its forward
    # does not run (kept so that its checkpoints load strictly), or that serve another call only. Under
    # DistributedDataParallel TURModel keeps them out of DDP (which would otherwise wait for their gradients and fail
    # at the next step, or have to search the graph for unused parameters at every step).
    unused_parameter_prefixes: tuple[str, ...] = ()

    def _init_uncertainty(self, arch: str, enabled: bool, detach: bool, num_out_ch: int) -> None:
        """Build the head of HEAD_SPECS[arch] (width from its tap, declared init) when enabled."""
        spec = HEAD_SPECS[arch]
        self.uncertainty_detach = bool(detach)
        self.uncertainty_head = None
        if not enabled:
            return
        tap = self.get_submodule(spec.tap)
        self.uncertainty_head = UncertaintyHead(tap.in_channels, num_out_ch)
        if spec.init == 'kaiming_normal_x0.1':
            default_init_weights(self.uncertainty_head, 0.1)
        elif spec.init != 'torch_default':
            raise ValueError(f"HEAD_SPECS['{arch}']: init must be one of {INITS}, got '{spec.init}'")

    def _restore_output(self, out: torch.Tensor, feat: torch.Tensor,
                        with_uncertainty: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not with_uncertainty:
            return out
        if self.uncertainty_head is None:
            raise RuntimeError(f'{type(self).__name__} was built without its uncertainty head; '
                               'set `uncertainty_head: true` in network_g to train with TURLoss')
        return out, self.uncertainty_head(feat.detach() if self.uncertainty_detach else feat)
