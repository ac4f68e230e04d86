"""Restormer (Zamir et al., CVPR 2022) and the transformer blocks it shares with PromptIR.

State-dict keys match `swz30/Restormer` (basicsr/models/archs/restormer_arch.py): patch_embed.proj,
encoder_level1..3, down1_2/2_3/3_4, latent, up4_3/3_2/2_1, reduce_chan_level3/2, decoder_level3..1, refinement,
skip_conv (dual-pixel only) and output; inside a block norm1.body, attn.{temperature,qkv,qkv_dwconv,project_out},
norm2.body, ffn.{project_in,dwconv,project_out}. The released checkpoints ({'params': ...}) load with strict=True;
the optional uncertainty head sits under `uncertainty_head.`.

The authors of TUR have no TUR Restormer: its head is our extension (HEAD_SPECS['Restormer']), placed as for PromptIR,
which shares Restormer's decoder: on the refined full-resolution features, the input of the `output` conv, with
torch's default conv init.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from einops import rearrange
from torch import nn

from basicsr_tur.archs.uncertainty import UncertaintyMixin
from basicsr_tur.utils.errors import UserError

# Three 2x downsamplings: every level's feature map must have integer size.
SIZE_MULTIPLE = 8
LAYER_NORM_TYPES = ('WithBias', 'BiasFree')


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Reflect-pad (B, C, H, W) at the bottom/right up to multiples of `multiple` (unchanged if already so).

    This is the padding of the official test scripts (Restormer's test.py, PromptIR's demo.py).
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    if pad_h >= h or pad_w >= w:
        raise UserError(f'input of size {h}x{w} is too small to reflect-pad to a multiple of {multiple}; '
                         f'use at least {multiple}x{multiple}')
    return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')


class _LastDimLayerNorm(nn.Module):
    """LayerNorm over the last dim of (B, N, C), with the authors' formula (biased variance, eps 1e-5 inside sqrt)."""

    def __init__(self, dim: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        # BiasFree has neither a bias nor mean-centring; registering None keeps `bias` out of the state dict.
        self.bias = nn.Parameter(torch.zeros(dim)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(-1, keepdim=True, unbiased=False)
        if self.bias is None:
            return x / torch.sqrt(var + 1e-5) * self.weight
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class LayerNorm(nn.Module):
    """Channel LayerNorm of (B, C, H, W), 'WithBias' or 'BiasFree' (the official `LayerNorm_type`)."""

    def __init__(self, dim: int, LayerNorm_type: str) -> None:
        super().__init__()
        self.body = _LastDimLayerNorm(dim, with_bias=LayerNorm_type != 'BiasFree')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return rearrange(self.body(rearrange(x, 'b c h w -> b (h w) c')), 'b (h w) c -> b c h w', h=h, w=w)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network (GDFN): (B, dim, H, W) -> (B, dim, H, W)."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA): attention across channels, (B, dim, H, W) -> same."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        q, k, v = (rearrange(t, 'b (head c) h w -> b head c (h w)', head=self.num_heads)
                   for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        # The C x C attention map is over L2-normalised channels, scaled by a learnt per-head temperature.
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(rearrange(out, 'b head c (h w) -> b (head c) h w', head=self.num_heads, h=h, w=w))


class TransformerBlock(nn.Module):
    """Pre-norm MDTA + GDFN block with residuals: (B, dim, H, W) -> (B, dim, H, W)."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                 LayerNorm_type: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stage(num_blocks: int, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                      LayerNorm_type: str) -> nn.Sequential:
    """`num_blocks` TransformerBlocks in sequence (keys `<stage>.<i>.`), as every Restormer level builds them."""
    return nn.Sequential(*[TransformerBlock(dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type)
                           for _ in range(num_blocks)])


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding: (B, in_c, H, W) -> (B, embed_dim, H, W)."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the size, double the channels: (B, n_feat, H, W) -> (B, 2 n_feat, H/2, W/2)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, padding=1, bias=False),
                                  nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the size, halve the channels: (B, n_feat, H, W) -> (B, n_feat / 2, 2H, 2W)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, padding=1, bias=False),
                                  nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def check_restormer_args(name: str, num_blocks: Sequence[int], heads: Sequence[int],
                         LayerNorm_type: str) -> None:
    """Refuse level lists that are not 4 long and unknown LayerNorm types, naming the value at fault."""
    if len(num_blocks) != 4 or len(heads) != 4:
        raise UserError(f'{name}: num_blocks and heads need one entry per level (4), '
                         f'got {list(num_blocks)} and {list(heads)}')
    if LayerNorm_type not in LAYER_NORM_TYPES:
        raise UserError(f"{name}: LayerNorm_type must be one of {LAYER_NORM_TYPES}, got '{LayerNorm_type}'")


@ARCH_REGISTRY.register()
class Restormer(UncertaintyMixin, nn.Module):
    """Restormer, a 4-level U-shaped transformer: (B, inp_channels, H, W) -> (B, out_channels, H, W).

    Any H, W work: the input is reflect-padded at the bottom/right to multiples of 8 (as the official test scripts
    do) and the output cropped back, so sizes already divisible by 8 give exactly the official output.

    Args:
        inp_channels: input channels (6 for dual-pixel defocus deblurring). Default: 3.
        out_channels: output channels. Default: 3.
        dim: channels at level 1 (level k has dim * 2**(k-1)). Default: 48.
        num_blocks: transformer blocks at levels 1-4. Default: [4, 6, 6, 8].
        num_refinement_blocks: blocks after the decoder, at full resolution. Default: 4.
        heads: attention heads at levels 1-4. Default: [1, 2, 4, 8].
        ffn_expansion_factor: GDFN hidden width over its input width. Default: 2.66.
        bias: biases in the convolutions. Default: False.
        LayerNorm_type: 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        dual_pixel_task: dual-pixel defocus deblurring (skip_conv from the embedding, no image residual).
            Default: False.
        uncertainty_head: add the TUR uncertainty head on the refined full-resolution features (2 dim channels; with
            dual_pixel_task, after the skip_conv is added). Our extension: TUR has no Restormer. Default: False.
        uncertainty_detach: the head reads those features detached, so the σ term of TURLoss never reaches the
            backbone. Default: False; the measurement that motivates it is in basicsr_tur/archs/uncertainty.py.
    """

    size_multiple = SIZE_MULTIPLE

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', dual_pixel_task: bool = False,
                 uncertainty_head: bool = False, uncertainty_detach: bool = False) -> None:
        super().__init__()
        check_restormer_args('Restormer', num_blocks, heads, LayerNorm_type)
        if not dual_pixel_task and inp_channels != out_channels:
            raise UserError(f'Restormer: the image residual needs inp_channels == out_channels unless '
                             f'dual_pixel_task, got {inp_channels} and {out_channels}')

        def stage(n: int, width: int, n_heads: int) -> nn.Sequential:
            return transformer_stage(n, width, n_heads, ffn_expansion_factor, bias, LayerNorm_type)

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = stage(num_blocks[0], dim, heads[0])
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = stage(num_blocks[1], dim * 2, heads[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = stage(num_blocks[2], dim * 4, heads[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = stage(num_blocks[3], dim * 8, heads[3])

        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = stage(num_blocks[2], dim * 4, heads[2])
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = stage(num_blocks[1], dim * 2, heads[1])
        # Level 1 of the decoder keeps the concatenated 2*dim channels (no 1x1 reduction), as in the paper.
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = stage(num_blocks[0], dim * 2, heads[0])
        self.refinement = stage(num_refinement_blocks, dim * 2, heads[0])
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)
        self._init_uncertainty('Restormer', uncertainty_head, uncertainty_detach, out_channels)

    def forward(self, x: torch.Tensor,
                with_uncertainty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore x; with_uncertainty=True also returns the uncertainty map (B, out_channels, H, W)."""
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x)
        emb = self.patch_embed(inp)
        enc1 = self.encoder_level1(emb)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        feat = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))
        if self.dual_pixel_task:
            feat = feat + self.skip_conv(emb)
            out = self.output(feat)
        else:
            out = self.output(feat) + inp
        # The head sees the cropped features, so the uncertainty covers exactly the output's pixels.
        return self._restore_output(out[..., :h, :w], feat[..., :h, :w], with_uncertainty)
