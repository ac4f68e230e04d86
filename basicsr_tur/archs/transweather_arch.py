"""TransWeather (Valanarasu et al., CVPR 2022): all-weather removal with learnable weather-type queries.

A MiT-style encoder `Tenc` (overlapping patch embeddings, spatial-reduction attention, Mix-FFN, plus the intra-patch
branch of `mini_patch_embed*`/`patch_block*`), a one-stage transformer decoder `Tdec` whose queries are learned
weather-type embeddings, a transposed-conv decoder `convtail` and `clean` + Tanh. State-dict keys match the
authors' `transweather_model.Transweather` (jeya-maria-jose/TransWeather), so their checkpoints load with strict=True;
the optional uncertainty head sits under `uncertainty_head.` on the 8-channel full-resolution output of `convtail`,
before `clean`, with torch's default conv init, where the TUR authors' `Transweather(if_uncertainty=True)` (Aitical/TUR
INIT commit 5d026e7) puts its `var_conv` (HEAD_SPECS['Transweather']; their head is outside Tenc/Tdec's init).
Their TUR checkpoints load through `checkpoint_filter_fn`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import to_2tuple
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn.init import trunc_normal_
from torchvision.ops import StochasticDepth

from basicsr_tur.archs.uncertainty import UncertaintyMixin, rename_authors_head
from basicsr_tur.utils.checkpoint import load_checkpoint
from basicsr_tur.utils.errors import UserError

# Modules of the original TransWeather that its forward never runs and that the TUR authors' copy (5d026e7) comments
# out, so their TUR checkpoints lack these keys (see Transweather.checkpoint_filter_fn).
TUR_ABSENT_MODULES = ('Tenc.mini_patch_embed4.', 'convtail.conv_output.')

# The decoder's convolutions upsample by 2 and trim an extra row/column only at the two coarsest scales, so the
# authors' forward runs on sizes divisible by 16 (their test scripts resize to multiples of 16).
SIZE_MULTIPLE = 16


def _min_size(sr_ratios: Sequence[int]) -> int:
    """Smallest multiple of SIZE_MULTIPLE whose maps can take every key/value reduction conv (kernel sr_ratio)."""
    size = SIZE_MULTIPLE
    while True:
        sides = [math.ceil(size / 4)]  # the side of each stage's map, strides 4, 8, 16, 32
        for _ in range(3):
            sides.append(math.ceil(sides[-1] / 2))
        # Stage i's intra-patch block runs at stage i+1's resolution with stage i's ratio.
        if all(sides[i + 1] >= sr_ratios[i] for i in range(3)) and sides[3] >= sr_ratios[3]:
            return size
        size += SIZE_MULTIPLE


def _init_weights(m: nn.Module) -> None:
    """The authors' init for transformer parts: truncated-normal Linear, unit LayerNorm, He-normal (fan-out) Conv2d."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def _to_image(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), a view."""
    return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def _to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), contiguous.

    The authors hand stage outputs on contiguous and in-stage maps as strided views; keeping each layout keeps the
    convolution kernels, and so the output, bit-identical to theirs.
    """
    return x.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows, then LayerNorm: (B, C_in, H, W) -> tokens (B, H'*W', C), H', W'."""

    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        patch_size = to_2tuple(patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, (patch_size[0] // 2, patch_size[1] // 2))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Embed x; also return the token grid's height and width."""
        x = self.proj(x)
        h, w = x.shape[2:]
        return self.norm(_to_tokens(x)), h, w


class DWConv(nn.Module):
    """Depth-wise 3×3 conv on tokens (B, H*W, C) laid out on their H×W grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens (B, H*W, C) -> (B, H*W, C)."""
        return _to_tokens(self.dwconv(_to_image(x, h, w)))


class Mlp(nn.Module):
    """Mix-FFN: Linear, depth-wise conv, GELU, Linear on tokens (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens (B, H*W, C) -> (B, H*W, C)."""
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class Attention(nn.Module):
    """Efficient self-attention (keys/values pooled by an sr_ratio-strided conv) on tokens (B, N, C) -> (B, N, C).

    With num_queries > 0 (the decoder's `Attention_dec`), the queries are `num_queries` learned weather-type
    embeddings instead of the tokens, stretched by nearest interpolation to one per key as the authors do.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, num_queries: int = 0) -> None:
        super().__init__()
        if dim % num_heads:
            raise UserError(f'Transweather: dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.task_query = nn.Parameter(torch.randn(1, num_queries, dim)) if num_queries else None
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens (B, H*W, C) -> (B, H*W, C)."""
        b, n, c = x.shape
        source = x if self.task_query is None else self.task_query.expand(b, -1, -1)
        q = self.q(source).reshape(b, source.shape[1], self.num_heads, -1).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(_to_tokens(self.sr(_to_image(x, h, w))))
        k, v = self.kv(x).reshape(b, -1, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.task_query is not None:
            q = F.interpolate(q, size=v.shape[2:])
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block (attention + Mix-FFN, stochastic depth) on tokens (B, H*W, C)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, drop_path: float,
                 num_queries: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, sr_ratio, num_queries)
        self.drop_path = StochasticDepth(drop_path, 'row') if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens (B, H*W, C) -> (B, H*W, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class Tenc(nn.Module):
    """Four-stage encoder with an intra-patch branch: (B, 3, H, W) -> maps at strides 4, 8, 16, 32."""

    def __init__(self, embed_dims: Sequence[int], num_heads: Sequence[int], mlp_ratios: Sequence[float],
                 depths: Sequence[int], sr_ratios: Sequence[int], drop_path_rate: float) -> None:
        super().__init__()
        self.embed_dims = list(embed_dims)
        d = self.embed_dims
        self.patch_embed1 = OverlapPatchEmbed(7, 4, 3, d[0])
        self.patch_embed2 = OverlapPatchEmbed(3, 2, d[0], d[1])
        self.patch_embed3 = OverlapPatchEmbed(3, 2, d[1], d[2])
        self.patch_embed4 = OverlapPatchEmbed(3, 2, d[2], d[3])
        self.mini_patch_embed1 = OverlapPatchEmbed(3, 2, d[0], d[1])
        self.mini_patch_embed2 = OverlapPatchEmbed(3, 2, d[1], d[2])
        self.mini_patch_embed3 = OverlapPatchEmbed(3, 2, d[2], d[3])
        # Never used in the forward, but part of the authors' model (and of its checkpoints and parameter count).
        self.mini_patch_embed4 = OverlapPatchEmbed(3, 2, d[0], d[3])

        # On the CPU whatever the default device: the rates are Python floats, and the model then builds on 'meta' too.
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        starts = [sum(depths[:i]) for i in range(4)]
        for i in range(4):
            setattr(self, f'block{i + 1}', nn.ModuleList(
                Block(d[i], num_heads[i], mlp_ratios[i], sr_ratios[i], dpr[starts[i] + j]) for j in range(depths[i])))
            setattr(self, f'norm{i + 1}', nn.LayerNorm(d[i], eps=1e-6))
        # The intra-patch block after stage i works at the next stage's width; the authors give it stage i's rates
        # (heads of stage min(i, 1), the drop-path rate of stage i's first block).
        for i in range(3):
            setattr(self, f'patch_block{i + 1}', nn.ModuleList([
                Block(d[i + 1], num_heads[min(i, 1)], mlp_ratios[i], sr_ratios[i], dpr[starts[i]])]))
            setattr(self, f'pnorm{i + 1}', nn.LayerNorm(d[i + 1], eps=1e-6))
        self.apply(_init_weights)

    @staticmethod
    def _run(blocks: nn.ModuleList, norm: nn.Module, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens (B, H*W, C) through blocks and norm, returned as a map (B, C, H, W)."""
        for blk in blocks:
            x = blk(x, h, w)
        return _to_map(norm(x), h, w)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [(B, d0, H/4, W/4), (B, d1, H/8, W/8), (B, d2, H/16, W/16), (B, d3, H/32, W/32)]."""
        outs = []
        tokens, h, w = self.patch_embed1(x)
        patch, ph, pw = self.mini_patch_embed1(_to_image(tokens, h, w))
        x = self._run(self.block1, self.norm1, tokens, h, w)
        patch = self._run(self.patch_block1, self.pnorm1, patch, ph, pw)
        outs.append(x)
        for i in (2, 3, 4):
            tokens, h, w = getattr(self, f'patch_embed{i}')(x)
            # The intra-patch branch of the previous stage is added to this stage's embedding before its blocks.
            x = _to_image(tokens, h, w) + patch
            if i < 4:
                patch, ph, pw = getattr(self, f'mini_patch_embed{i}')(x)
            x = self._run(getattr(self, f'block{i}'), getattr(self, f'norm{i}'), _to_tokens(x), h, w)
            outs.append(x)
            if i < 4:
                patch = self._run(getattr(self, f'patch_block{i}'), getattr(self, f'pnorm{i}'), patch, ph, pw)
        return outs


class Tdec(nn.Module):
    """Weather-query transformer decoder on the stride-32 map: (B, d3, H/32, W/32) -> (B, d3, H/64, W/64)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, depth: int, num_queries: int,
                 drop_path_rate: float) -> None:
        super().__init__()
        self.patch_embed1 = OverlapPatchEmbed(3, 2, dim, dim)
        # The authors space the rates over depths (3, 4, 6, 3) but build only the first stage's blocks.
        dpr = torch.linspace(0, drop_path_rate, max(16, depth), device='cpu').tolist()
        self.block1 = nn.ModuleList(Block(dim, num_heads, mlp_ratio, 1, dpr[i], num_queries) for i in range(depth))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d3, h, w) -> (B, d3, ceil(h/2), ceil(w/2))."""
        x, h, w = self.patch_embed1(x)
        for blk in self.block1:
            x = blk(x, h, w)
        return _to_map(self.norm1(x), h, w)


class ConvLayer(nn.Module):
    """A plain Conv2d under the authors' `conv2d` key."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        return self.conv2d(x)


class UpsampleConvLayer(nn.Module):
    """×2 transposed conv (kernel 4, stride 2, padding 1) under the authors' `conv2d` key."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv2d = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        return self.conv2d(x)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv scaled by 0.1 plus the input: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1, 1)
        self.conv2 = ConvLayer(channels, channels, 3, 1, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.conv2(self.relu(self.conv1(x))) * 0.1 + x


class ConvProjection(nn.Module):
    """The authors' `convprojection`: fuse decoder and encoder maps up to full resolution, (B, 8, H, W)."""

    def __init__(self, embed_dims: Sequence[int]) -> None:
        super().__init__()
        d = embed_dims
        self.convd32x = UpsampleConvLayer(d[3], d[3])
        self.convd16x = UpsampleConvLayer(d[3], d[2])
        self.dense_4 = nn.Sequential(ResidualBlock(d[2]))
        self.convd8x = UpsampleConvLayer(d[2], d[1])
        self.dense_3 = nn.Sequential(ResidualBlock(d[1]))
        self.convd4x = UpsampleConvLayer(d[1], d[0])
        self.dense_2 = nn.Sequential(ResidualBlock(d[0]))
        self.convd2x = UpsampleConvLayer(d[0], 16)
        self.dense_1 = nn.Sequential(ResidualBlock(16))
        self.convd1x = UpsampleConvLayer(16, 8)
        # Unused in the forward (the model's `clean` makes the output), kept for the authors' keys and count.
        self.conv_output = ConvLayer(8, 3, 3, 1, 1)
        self.active = nn.Tanh()

    def forward(self, enc: list[torch.Tensor], dec: torch.Tensor) -> torch.Tensor:
        """Encoder maps at strides 4..32 and the decoder map at stride 64 -> features (B, 8, H, W)."""
        # Upsampling an odd-sized map overshoots by one row/column; the authors trim it at the two coarsest scales.
        res16x = self.convd32x(dec)[..., :enc[3].shape[2], :enc[3].shape[3]] + enc[3]
        res16x = self.convd16x(res16x)[..., :enc[2].shape[2], :enc[2].shape[3]]
        res8x = self.convd8x(self.dense_4(res16x) + enc[2])
        res4x = self.convd4x(self.dense_3(res8x) + enc[1])
        res2x = self.convd2x(self.dense_2(res4x) + enc[0])
        return self.convd1x(self.dense_1(res2x))


@ARCH_REGISTRY.register()
class Transweather(UncertaintyMixin, nn.Module):
    """TransWeather: (B, 3, H, W) -> Tanh output (B, 3, H, W); H, W reflect-padded to a multiple of 16, cropped back.

    The authors feed inputs normalised to [-1, 1] (`Normalize(0.5, 0.5)`) and train the Tanh output directly
    against [0, 1] targets; there is no input residual. Our pipelines feed [0, 1] images; `input_range: [-1, 1]`
    maps them to the authors' range inside the forward (x * (hi - lo) + lo before Tenc), the output being left as the
    Tanh gives it.

    Args:
        path: a checkpoint to load at construction (strictly, any wrapping `load_checkpoint` knows). Default: None.
        embed_dims: encoder widths of the four stages. Default: (64, 128, 320, 512).
        num_heads: encoder attention heads per stage. Default: (1, 2, 4, 4).
        mlp_ratios: encoder Mix-FFN expansion per stage. Default: (2, 2, 2, 2).
        depths: encoder blocks per stage. Default: (2, 2, 2, 2).
        sr_ratios: encoder key/value spatial reduction per stage. Default: (4, 2, 2, 1).
        dec_num_heads: heads of the weather-query decoder. Default: 8.
        dec_mlp_ratio: Mix-FFN expansion of the decoder. Default: 4.
        dec_depth: decoder blocks. Default: 3.
        num_task_queries: learned weather-type queries per decoder block. Default: 48.
        drop_path_rate: stochastic-depth rate of encoder and decoder. Default: 0.1.
        input_range: [lo, hi], the range a [0, 1] input is mapped to before the encoder; [-1, 1] is the authors'
            normalisation. Default: [0, 1] (no change).
        uncertainty_head: add the TUR uncertainty head on convtail's 8-channel output. Default: False.
        uncertainty_detach: the head reads that output detached, so the σ term of TURLoss never reaches the backbone.
            Default: False (the authors'); the measurement that motivates it is in basicsr_tur/archs/uncertainty.py.
    """

    size_multiple = SIZE_MULTIPLE
    unused_parameter_prefixes = TUR_ABSENT_MODULES

    def __init__(self, path: str | None = None, embed_dims: Sequence[int] = (64, 128, 320, 512),
                 num_heads: Sequence[int] = (1, 2, 4, 4), mlp_ratios: Sequence[float] = (2, 2, 2, 2),
                 depths: Sequence[int] = (2, 2, 2, 2), sr_ratios: Sequence[int] = (4, 2, 2, 1),
                 dec_num_heads: int = 8, dec_mlp_ratio: float = 4, dec_depth: int = 3, num_task_queries: int = 48,
                 drop_path_rate: float = 0.1, input_range: Sequence[float] = (0, 1), uncertainty_head: bool = False,
                 uncertainty_detach: bool = False) -> None:
        super().__init__()
        if len(input_range) != 2 or not input_range[0] < input_range[1]:
            raise UserError(f'Transweather: input_range (network_g.input_range) must be [lo, hi] with lo < hi, '
                             f'e.g. [-1, 1], got {list(input_range)}')
        self.input_range = (float(input_range[0]), float(input_range[1]))
        for name, value in (('embed_dims', embed_dims), ('num_heads', num_heads), ('mlp_ratios', mlp_ratios),
                            ('depths', depths), ('sr_ratios', sr_ratios)):
            if len(value) != 4:
                raise UserError(f'Transweather: {name} needs one value per stage (4), got {list(value)}')
        self.Tenc = Tenc(embed_dims, num_heads, mlp_ratios, depths, sr_ratios, drop_path_rate)
        self.Tdec = Tdec(embed_dims[3], dec_num_heads, dec_mlp_ratio, dec_depth, num_task_queries, drop_path_rate)
        self.convtail = ConvProjection(embed_dims)
        self.clean = ConvLayer(8, 3, 3, 1, 1)
        self.active = nn.Tanh()
        self.min_size = _min_size(sr_ratios)
        self._init_uncertainty('Transweather', uncertainty_head, uncertainty_detach, 3)
        if path is not None:
            load_checkpoint(self, path)

    @staticmethod
    def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
        """Map the authors' TUR checkpoint (5d026e7 `Transweather(if_uncertainty=True)`) to our keys.

        Their head `var_conv.*` becomes `uncertainty_head.*`. Their copy of the model comments out
        `Tenc.mini_patch_embed4` and `convtail.conv_output`, which the original forward never runs: when a file has
        none of a module's keys, they are taken from `model` itself, so the file loads strictly and the restored
        image is unchanged. A file with only some of a module's keys is left as it is (and fails to load strictly).
        """
        state_dict = rename_authors_head(state_dict, 'Transweather')
        own = model.state_dict()
        for prefix in TUR_ABSENT_MODULES:
            if not any(k.startswith(prefix) for k in state_dict):
                state_dict.update({k: v for k, v in own.items() if k.startswith(prefix)})
        return state_dict

    def forward(self, x: torch.Tensor,
                with_uncertainty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore x (B, 3, H, W); with_uncertainty=True also returns the uncertainty map (B, 3, H, W)."""
        lo, hi = self.input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        h, w = x.shape[2:]
        pad_h = max(self.min_size, h + -h % SIZE_MULTIPLE) - h
        pad_w = max(self.min_size, w + -w % SIZE_MULTIPLE) - w
        if pad_h or pad_w:
            # Reflection needs the image to be larger than the padding; tiny inputs repeat their border instead
            # (as Uformer does), so a small patch is restored rather than refused.
            mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        enc = self.Tenc(x)
        feat = self.convtail(enc, self.Tdec(enc[3]))
        out = self.active(self.clean(feat))
        return self._restore_output(out[..., :h, :w], feat[..., :h, :w], with_uncertainty)


@ARCH_REGISTRY.register()
class TransWeather(Transweather):
    """The paper's spelling of `Transweather`, same arguments and state-dict keys."""
