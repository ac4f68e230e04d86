"""Uformer (Wang et al., CVPR 2022): a U-shaped transformer of locally-enhanced window (LeWin) blocks.

Constructor arguments, defaults and state-dict keys follow the official `model.py` (ZhendongWang6/Uformer), so the
released checkpoints (`{'epoch', 'state_dict', 'optimizer'}`, keys possibly prefixed `module.`) and MiOIR's basicsr
checkpoints (`{'params': ...}`) load with strict=True through `load_checkpoint`. The variants of the paper:
Uformer-T `embed_dim=16`, Uformer-S `embed_dim=32`, Uformer-B `embed_dim=32, depths=[1, 2, 8, 8, 2, 8, 8, 2, 1]`,
all with `modulator=True` in the official `get_arch` (MiOIR trains Uformer-B).

Unlike the official code, which recovers the size of a token sequence as sqrt(length) and so needs square inputs
that are multiples of 2**4 x win_size, every module here is told (H, W): the input is reflect-padded at the
bottom/right to the multiple the windows need and the output cropped back. On a valid square input the computation
is the official one, operation for operation.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import to_2tuple
from basicsr.utils.registry import ARCH_REGISTRY
from einops import rearrange
from torch import nn
from torch.nn.init import trunc_normal_
from torch.utils import checkpoint
from torchvision.ops import StochasticDepth

from basicsr_tur.archs.uncertainty import UncertaintyMixin, rename_authors_head
from basicsr_tur.utils.errors import UserError

Size = tuple[int, int]


def to_map(x: torch.Tensor, hw: Size) -> torch.Tensor:
    """Tokens (B, H*W, C) -> feature map (B, C, H, W)."""
    return rearrange(x, 'b (h w) c -> b c h w', h=hw[0], w=hw[1])


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """Feature map (B, C, H, W) -> tokens (B, H*W, C)."""
    return rearrange(x, 'b c h w -> b (h w) c')


def window_partition(x: torch.Tensor, win: int) -> torch.Tensor:
    """Split (B, H, W, C) into non-overlapping windows (B*nW, win*win, C), windows in row-major order."""
    return rearrange(x, 'b (h p) (w q) c -> (b h w) (p q) c', p=win, q=win)


def window_reverse(windows: torch.Tensor, win: int, hw: Size) -> torch.Tensor:
    """Inverse of window_partition: (B*nW, win*win, C) -> (B, H, W, C)."""
    return rearrange(windows, '(b h w) (p q) c -> b (h p) (w q) c', h=hw[0] // win, w=hw[1] // win, p=win)


def shift_attn_mask(hw: Size, win: int, shift: int, like: torch.Tensor) -> torch.Tensor:
    """Additive mask (nW, win*win, win*win): -100 between tokens the cyclic shift brought from different regions."""
    region = torch.zeros(1, *hw, 1, dtype=like.dtype, device=like.device)
    spans = (slice(0, -win), slice(-win, -shift), slice(-shift, None))
    for i, (hs, ws) in enumerate((hs, ws) for hs in spans for ws in spans):
        region[:, hs, ws, :] = i
    ids = window_partition(region, win).squeeze(-1)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0)


def pad_to_multiple(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom/right so H and W are multiples of factor (reflect; replicate if too small)."""
    h, w = x.shape[-2:]
    ph, pw = -h % factor, -w % factor
    if ph == 0 and pw == 0:
        return x
    # Reflection cannot mirror more than size - 1 pixels; a tiny image falls back to repeating its border.
    mode = 'reflect' if ph < h and pw < w else 'replicate'
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class LinearProjection(nn.Module):
    """q from tokens (B_, N, C); k, v from the same tokens or from shared ones (M, C): each (B_, heads, ., C/heads)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim_head * heads, bias=bias)
        self.to_kv = nn.Linear(dim, dim_head * heads * 2, bias=bias)

    def forward(self, x: torch.Tensor,
                attn_kv: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q, k, v) for x (B_, N, C); attn_kv (M, C) is shared by the whole batch when given."""
        kv_in = x if attn_kv is None else attn_kv.unsqueeze(0).expand(x.shape[0], -1, -1)
        q = rearrange(self.to_q(x), 'b n (h d) -> b h n d', h=self.heads)
        k, v = rearrange(self.to_kv(kv_in), 'b n (two h d) -> two b h n d', two=2, h=self.heads)
        return q, k, v


class Attention(nn.Module):
    """Multi-head attention of tokens (B_, N, C) over themselves or over shared tokens; WindowAttention adds a bias."""

    def __init__(self, dim: int, num_heads: int, token_projection: str = 'linear', qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = LinearProjection(dim, num_heads, dim // num_heads, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def position_bias(self, attn: torch.Tensor) -> torch.Tensor:
        """Attention logits (B_, heads, N, M) with a positional bias added; none for plain attention."""
        return attn

    def forward(self, x: torch.Tensor, attn_kv: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend x (B_, N, C) -> (B_, N, C); mask (nW, N, N) is added per window (B_ = B * nW)."""
        b_, n, c = x.shape
        q, k, v = self.qkv(x, attn_kv)
        attn = self.position_bias((q * self.scale) @ k.transpose(-2, -1))
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, -1) + mask[None, :, None]
            attn = attn.view(b_, self.num_heads, n, -1)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj_drop(self.proj(x))


class WindowAttention(Attention):
    """Self-attention inside windows of win_size tokens (B_, Wh*Ww, C) with a learned relative position bias."""

    def __init__(self, dim: int, win_size: Size, num_heads: int, token_projection: str = 'linear',
                 qkv_bias: bool = True, qk_scale: float | None = None, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__(dim, num_heads, token_projection, qkv_bias, qk_scale, attn_drop, proj_drop)
        self.win_size = win_size
        wh, ww = win_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij')).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        # A persistent buffer, as in the official model: its checkpoints contain it.
        self.register_buffer('relative_position_index', (rel[..., 0] + wh - 1) * (2 * ww - 1) + rel[..., 1] + ww - 1)
        trunc_normal_(self.relative_position_bias_table, std=.02)

    def position_bias(self, attn: torch.Tensor) -> torch.Tensor:
        """Attention logits (B_, heads, N, N) plus the relative position bias of each head."""
        n = self.win_size[0] * self.win_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)


class Mlp(nn.Module):
    """Token-wise feed-forward network (B, N, C) -> (B, N, C) (token_mlp 'ffn'/'mlp')."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: type[nn.Module] = nn.GELU, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features or in_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features or in_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Apply to tokens (B, H*W, C); hw is unused (same call as LeFF)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LeFF(nn.Module):
    """Locally-enhanced feed-forward: linear, 3x3 depthwise conv on the token grid, linear; (B, H*W, C) -> same."""

    def __init__(self, dim: int = 32, hidden_dim: int = 128, act_layer: type[nn.Module] = nn.GELU,
                 drop: float = 0.) -> None:
        super().__init__()
        self.linear1 = nn.Sequential(nn.Linear(dim, hidden_dim), act_layer())
        self.dwconv = nn.Sequential(nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim), act_layer())
        self.linear2 = nn.Sequential(nn.Linear(hidden_dim, dim))

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Apply to tokens (B, H*W, C) laid out on an H x W grid."""
        return self.linear2(to_tokens(self.dwconv(to_map(self.linear1(x), hw))))


class LeWinTransformerBlock(nn.Module):
    """(Shifted-)window attention then LeFF, both residual, on tokens (B, H*W, C); optional learned modulators."""

    def __init__(self, dim: int, input_resolution: Size, num_heads: int, win_size: int = 8, shift_size: int = 0,
                 mlp_ratio: float = 4., qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.,
                 attn_drop: float = 0., drop_path: float = 0., act_layer: type[nn.Module] = nn.GELU,
                 norm_layer: type[nn.Module] = nn.LayerNorm, token_projection: str = 'linear',
                 token_mlp: str = 'leff', modulator: bool = False, cross_modulator: bool = False) -> None:
        super().__init__()
        self.win_size, self.shift_size = win_size, shift_size
        # As officially: a stage whose training size (img_size) fits in one window uses that size and no shift,
        # whatever size it later runs at.
        if min(input_resolution) <= win_size:
            self.win_size, self.shift_size = min(input_resolution), 0
        if not 0 <= self.shift_size < self.win_size:
            raise UserError(f'LeWinTransformerBlock: shift_size {shift_size} must be in [0, {self.win_size})')
        if (modulator or cross_modulator) and self.win_size != win_size:
            raise UserError(f'LeWinTransformerBlock: a modulator of {win_size}x{win_size} tokens needs '
                             f'input_resolution {input_resolution} of at least win_size {win_size}; raise img_size')
        self.modulator = nn.Embedding(win_size * win_size, dim) if modulator else None
        if cross_modulator:
            self.cross_modulator = nn.Embedding(win_size * win_size, dim)
            self.cross_attn = Attention(dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                                        proj_drop=drop, token_projection=token_projection)
            self.norm_cross = norm_layer(dim)
        else:
            self.cross_modulator = None
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, to_2tuple(self.win_size), num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                    attn_drop=attn_drop, proj_drop=drop, token_projection=token_projection)
        self.drop_path = StochasticDepth(drop_path, 'row') if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        hidden = int(dim * mlp_ratio)
        if token_mlp == 'leff':
            self.mlp = LeFF(dim, hidden, act_layer=act_layer, drop=drop)
        else:
            self.mlp = Mlp(dim, hidden, act_layer=act_layer, drop=drop)

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Transform tokens (B, H*W, C) of an H x W grid (H, W multiples of the window size)."""
        b, _, c = x.shape
        win, shift = self.win_size, self.shift_size
        if self.cross_modulator is not None:
            # The official block computes norm_cross(x) but attends from the raw x; its output is kept as trained.
            x = x + self.cross_attn(x, self.cross_modulator.weight)
        shortcut = x
        x = self.norm1(x).view(b, *hw, c)
        if shift > 0:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, win)
        if self.modulator is not None:
            windows = windows + self.modulator.weight
        windows = self.attn(windows, mask=shift_attn_mask(hw, win, shift, x) if shift > 0 else None)
        x = window_reverse(windows, win, hw)
        if shift > 0:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, -1, c))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class BasicUformerLayer(nn.Module):
    """A stage of `depth` LeWin blocks on tokens (B, H*W, C), alternating plain and shifted windows if shift_flag."""

    def __init__(self, dim: int, output_dim: int, input_resolution: Size, depth: int, num_heads: int, win_size: int,
                 mlp_ratio: float = 4., qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.,
                 attn_drop: float = 0., drop_path: float | Sequence[float] = 0.,
                 norm_layer: type[nn.Module] = nn.LayerNorm, use_checkpoint: bool = False,
                 token_projection: str = 'linear', token_mlp: str = 'ffn', shift_flag: bool = True,
                 modulator: bool = False, cross_modulator: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            LeWinTransformerBlock(
                dim, input_resolution, num_heads, win_size=win_size,
                shift_size=win_size // 2 if shift_flag and i % 2 == 1 else 0, mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop, attn_drop=attn_drop,
                drop_path=drop_path[i] if isinstance(drop_path, Sequence) else drop_path, norm_layer=norm_layer,
                token_projection=token_projection, token_mlp=token_mlp, modulator=modulator,
                cross_modulator=cross_modulator)
            for i in range(depth)])

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Transform tokens (B, H*W, C) of an H x W grid."""
        for blk in self.blocks:
            x = checkpoint.checkpoint(blk, x, hw, use_reentrant=False) if self.use_checkpoint else blk(x, hw)
        return x


class Downsample(nn.Module):
    """Halve the token grid with a 4x4 stride-2 conv: (B, H*W, C_in) -> (B, H*W/4, C_out)."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channel, out_channel, kernel_size=4, stride=2, padding=1))

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Downsample tokens of an H x W grid."""
        return to_tokens(self.conv(to_map(x, hw)))


class Upsample(nn.Module):
    """Double the token grid with a 2x2 stride-2 transposed conv: (B, H*W, C_in) -> (B, 4*H*W, C_out)."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.deconv = nn.Sequential(nn.ConvTranspose2d(in_channel, out_channel, kernel_size=2, stride=2))

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Upsample tokens of an H x W grid."""
        return to_tokens(self.deconv(to_map(x, hw)))


class InputProj(nn.Module):
    """3x3 conv and LeakyReLU from the image (B, C_in, H, W) to tokens (B, H*W, C_out)."""

    def __init__(self, in_channel: int = 3, out_channel: int = 64) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channel, out_channel, 3, 1, 1), nn.LeakyReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project an image to tokens."""
        return to_tokens(self.proj(x))


class OutputProj(nn.Module):
    """3x3 conv from tokens (B, H*W, C_in) of an H x W grid to an image (B, C_out, H, W)."""

    def __init__(self, in_channel: int = 64, out_channel: int = 3) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channel, out_channel, 3, 1, 1))

    def forward(self, x: torch.Tensor, hw: Size) -> torch.Tensor:
        """Project tokens to an image."""
        return self.proj(to_map(x, hw))


@ARCH_REGISTRY.register()
class Uformer(UncertaintyMixin, nn.Module):
    """Uformer: (B, dd_in, H, W) -> (B, in_chans, H, W), with a global residual when dd_in == 3; any H, W.

    Four encoder stages (embed_dim x 1, 2, 4, 8 channels, each followed by a stride-2 conv), a bottleneck
    (16 x embed_dim) and four decoder stages on [upsampled, skip] tokens (16, 8, 4, 2 x embed_dim). The uncertainty
    head sits where the authors' `Uformer_uncertainty` puts its `var_conv` (HEAD_SPECS['Uformer']): on the decoder's
    output tokens (B, H*W, 2*embed_dim) before `output_proj`, reshaped to (B, 2*embed_dim, H, W) and cropped like the
    output; torch's default conv init (the authors' `_init_weights` touches only Linear and LayerNorm). Their TUR
    checkpoints (head `var_conv.*`, hard-coded there for embed_dim 32) load through `checkpoint_filter_fn`.

    Args (official names and defaults):
        img_size: training patch size; a stage whose size img_size / 2**i fits in one window uses windows of that
            size without shift, as officially (the official test scripts build with 128). Default: 256.
        in_chans: output channels. Default: 3.
        dd_in: input channels; the input is added to the output only when 3. Default: 3.
        embed_dim: channels of the first stage. Default: 32.
        depths: blocks of the 9 stages (4 encoder, bottleneck, 4 decoder). Default: (2,) * 9.
        num_heads: attention heads of the 9 stages. Default: (1, 2, 4, 8, 16, 16, 8, 4, 2).
        win_size: attention window side. Default: 8.
        mlp_ratio: hidden/embedding channels of the feed-forward. Default: 4.
        qkv_bias / qk_scale: bias of the q, k, v projections / logit scale (None: head_dim ** -0.5).
        drop_rate / attn_drop_rate / drop_path_rate: dropout, attention dropout, stochastic depth (0, 0, 0.1).
        norm_layer: token normalisation. Default: nn.LayerNorm.
        patch_norm: kept for the official signature; unused there too. Default: True.
        use_checkpoint: gradient checkpointing per block (saves memory in training). Default: False.
        token_projection: 'linear' (the 'conv' projection of the official file is not implemented).
        token_mlp: 'leff', or 'ffn'/'mlp' (a plain MLP); 'fastleff' needs a compiled extension and is refused.
        dowsample / upsample: classes built as cls(in_channels, out_channels), called on (tokens, (H, W)).
        shift_flag: alternate plain and shifted windows in every stage. Default: True.
        modulator: a learned window-sized modulator added before attention in the decoder. Default: False.
        cross_modulator: decoder cross-attention to a learned modulator. Default: False.
        uncertainty_head: add the TUR uncertainty head on the decoder's output. Default: False.
        uncertainty_detach: the head reads that output detached, so the σ term of TURLoss never reaches the backbone.
            Default: False (the authors'); the measurement that motivates it is in basicsr_tur/archs/uncertainty.py.
    """

    def __init__(self, img_size: int = 256, in_chans: int = 3, dd_in: int = 3, embed_dim: int = 32,
                 depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2, 2, 2),
                 num_heads: Sequence[int] = (1, 2, 4, 8, 16, 16, 8, 4, 2), win_size: int = 8, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., drop_path_rate: float = 0.1, norm_layer: type[nn.Module] = nn.LayerNorm,
                 patch_norm: bool = True, use_checkpoint: bool = False, token_projection: str = 'linear',
                 token_mlp: str = 'leff', dowsample: type[nn.Module] = Downsample,
                 upsample: type[nn.Module] = Upsample, shift_flag: bool = True, modulator: bool = False,
                 cross_modulator: bool = False, uncertainty_head: bool = False,
                 uncertainty_detach: bool = False) -> None:
        super().__init__()
        if len(depths) != 9 or len(num_heads) != 9:
            raise UserError(f'Uformer: depths {list(depths)} and num_heads {list(num_heads)} need 9 entries each')
        if sum(depths[5:]) > sum(depths[:4]):
            raise UserError(f'Uformer: decoder depths {list(depths[5:])} may not sum to more than encoder depths '
                             f'{list(depths[:4])} (the decoder reuses their stochastic-depth rates)')
        if token_projection != 'linear':
            raise UserError(f"Uformer: token_projection '{token_projection}' is not supported (use 'linear')")
        if token_mlp not in ('leff', 'ffn', 'mlp'):
            raise UserError(f"Uformer: token_mlp '{token_mlp}' is not supported (use 'leff', 'ffn' or 'mlp'; "
                             "'fastleff' needs the compiled torch_dwconv extension)")
        if dd_in == 3 and in_chans != 3:
            raise UserError(f'Uformer: with dd_in=3 the input is added to the output, so in_chans must be 3, '
                             f'got {in_chans}')
        if img_size < 16:
            raise UserError(f'Uformer: img_size {img_size} must be at least 16 (four stride-2 stages)')
        self.embed_dim, self.dd_in, self.win_size, self.reso = embed_dim, dd_in, win_size, img_size
        self.patch_norm, self.token_projection, self.mlp_ratio = patch_norm, token_projection, mlp_ratio
        self.pos_drop = nn.Dropout(p=drop_rate)

        # Float32 rates as officially; computed on the CPU so that building under `torch.device('meta')` works.
        enc_dpr = torch.linspace(0, drop_path_rate, sum(depths[:4]), device='cpu').tolist()
        dec_dpr = enc_dpr[::-1]

        def stage(i: int, dim: int, scale: int, drop_path: list[float], decoder: bool) -> BasicUformerLayer:
            reso = img_size // scale
            return BasicUformerLayer(
                dim=dim, output_dim=dim, input_resolution=(reso, reso), depth=depths[i], num_heads=num_heads[i],
                win_size=win_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                attn_drop=attn_drop_rate, drop_path=drop_path, norm_layer=norm_layer, use_checkpoint=use_checkpoint,
                token_projection=token_projection, token_mlp=token_mlp, shift_flag=shift_flag,
                modulator=decoder and modulator, cross_modulator=decoder and cross_modulator)

        def enc(i: int) -> list[float]:
            return enc_dpr[sum(depths[:i]):sum(depths[:i + 1])]

        def dec(i: int) -> list[float]:
            return dec_dpr[sum(depths[5:5 + i]):sum(depths[5:6 + i])]

        e = embed_dim
        self.input_proj = InputProj(dd_in, e)
        self.output_proj = OutputProj(2 * e, in_chans)
        self.encoderlayer_0 = stage(0, e, 1, enc(0), False)
        self.dowsample_0 = dowsample(e, 2 * e)
        self.encoderlayer_1 = stage(1, 2 * e, 2, enc(1), False)
        self.dowsample_1 = dowsample(2 * e, 4 * e)
        self.encoderlayer_2 = stage(2, 4 * e, 4, enc(2), False)
        self.dowsample_2 = dowsample(4 * e, 8 * e)
        self.encoderlayer_3 = stage(3, 8 * e, 8, enc(3), False)
        self.dowsample_3 = dowsample(8 * e, 16 * e)
        self.conv = stage(4, 16 * e, 16, [drop_path_rate] * depths[4], False)
        self.upsample_0 = upsample(16 * e, 8 * e)
        self.decoderlayer_0 = stage(5, 16 * e, 8, dec(0), True)
        self.upsample_1 = upsample(16 * e, 4 * e)
        self.decoderlayer_1 = stage(6, 8 * e, 4, dec(1), True)
        self.upsample_2 = upsample(8 * e, 2 * e)
        self.decoderlayer_2 = stage(7, 4 * e, 2, dec(2), True)
        self.upsample_3 = upsample(4 * e, e)
        self.decoderlayer_3 = stage(8, 2 * e, 1, dec(3), True)
        self.apply(self._init_weights)

        # Stage i runs at 1/2**i of the input with windows of min(win_size, img_size // 2**i) (see the block):
        # the input must be a multiple of every 2**i x window.
        self.pad_factor = self.size_multiple = math.lcm(*(2 ** i * min(win_size, img_size // 2 ** i) for i in range(5)))
        self._init_uncertainty('Uformer', uncertainty_head, uncertainty_detach, in_chans)

    @staticmethod
    def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
        """Map the authors' TUR checkpoint (`Uformer_uncertainty`: head `var_conv.*`) to our keys."""
        return rename_authors_head(state_dict, 'Uformer')

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set[str]:
        """Parameter name parts that optimizers following the authors leave out of weight decay."""
        return {'relative_position_bias_table'}

    def forward(self, x: torch.Tensor,
                with_uncertainty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore x (B, dd_in, H, W) -> (B, in_chans, H, W); with_uncertainty=True also returns the uncertainty map."""
        h, w = x.shape[-2:]
        x_pad = pad_to_multiple(x, self.pad_factor)
        hp, wp = x_pad.shape[-2:]
        size = [(hp // 2 ** i, wp // 2 ** i) for i in range(5)]

        y = self.pos_drop(self.input_proj(x_pad))
        conv0 = self.encoderlayer_0(y, size[0])
        conv1 = self.encoderlayer_1(self.dowsample_0(conv0, size[0]), size[1])
        conv2 = self.encoderlayer_2(self.dowsample_1(conv1, size[1]), size[2])
        conv3 = self.encoderlayer_3(self.dowsample_2(conv2, size[2]), size[3])
        conv4 = self.conv(self.dowsample_3(conv3, size[3]), size[4])

        deconv0 = self.decoderlayer_0(torch.cat([self.upsample_0(conv4, size[4]), conv3], -1), size[3])
        deconv1 = self.decoderlayer_1(torch.cat([self.upsample_1(deconv0, size[3]), conv2], -1), size[2])
        deconv2 = self.decoderlayer_2(torch.cat([self.upsample_2(deconv1, size[2]), conv1], -1), size[1])
        deconv3 = self.decoderlayer_3(torch.cat([self.upsample_3(deconv2, size[1]), conv0], -1), size[0])

        out = self.output_proj(deconv3, size[0])
        if self.dd_in == 3:
            out = x_pad + out
        feat = to_map(deconv3, size[0])[..., :h, :w]
        return self._restore_output(out[..., :h, :w], feat, with_uncertainty)
