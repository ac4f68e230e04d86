"""PromptIR (Potlapalli et al., NeurIPS 2023): Restormer with learnt prompts injected into its decoder.

State-dict keys match `va1shn9v/PromptIR` (net/model.py): the Restormer keys plus prompt1..3 (prompt_param,
linear_layer, conv3x3), noise_level1..3 (a TransformerBlock on features + prompt), reduce_noise_level1..3, and the
constructed-but-unused chnl_reduce1..3 and reduce_noise_channel_1..3. The released Lightning checkpoint
(`model.ckpt`: {'state_dict': {'net.<key>': ...}, 'epoch': ..., ...}) loads with strict=True through
`load_checkpoint`, which unwraps `state_dict` and strips the `net.` prefix. The transformer blocks are those of
restormer_arch.py; the optional uncertainty head sits under `uncertainty_head.`.

The uncertainty head (HEAD_SPECS['PromptIR']) reads the refined full-resolution features (2*dim channels), the input
of the `output` conv, with torch's default conv init. The authors' `PromptIR_uncertainty` (Aitical/TUR,
PromptIR_uncertainty_arch.py) cannot run as written: it overwrites those features with `output(features) + input`
(3 channels), feeds that to its `var_conv`, whose first conv expects 2*dim channels (a channel-mismatch error),
and would then apply `output` a second time to the 3-channel image. Its `var_conv` is built for 2*dim input
channels, so the features it was written for are the refined ones before `output`; that is where ours reads, the
same placement as the authors' working heads (AirNet, Uformer: the last feature map before the output conv). Their
key names (`var_conv.*`) load through `checkpoint_filter_fn`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_tur.archs.restormer_arch import (
    SIZE_MULTIPLE,
    Downsample,
    OverlapPatchEmbed,
    TransformerBlock,
    Upsample,
    check_restormer_args,
    pad_to_multiple,
    transformer_stage,
)
from basicsr_tur.archs.uncertainty import UncertaintyMixin, rename_authors_head
from basicsr_tur.utils.errors import UserError

# The authors hard-coded the prompt and fusion widths for dim=48 (e.g. 192 = 4*48 in reduce_chan_level3).
OFFICIAL_DIM = 48


class PromptGenBlock(nn.Module):
    """Prompt from features: softmax weights from pooled x mix `prompt_len` learnt maps, resized to x.

    (B, lin_dim, H, W) -> (B, prompt_dim, H, W).
    """

    def __init__(self, prompt_dim: int = 128, prompt_len: int = 5, prompt_size: int = 96,
                 lin_dim: int = 192) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # (B, prompt_len)
        prompt = (weights[:, :, None, None, None] * self.prompt_param).sum(dim=1)  # (B, prompt_dim, size, size)
        prompt = F.interpolate(prompt, x.shape[-2:], mode='bilinear', align_corners=False)
        return self.conv3x3(prompt)


@ARCH_REGISTRY.register()
class PromptIR(UncertaintyMixin, nn.Module):
    """PromptIR: (B, inp_channels, H, W) -> (B, out_channels, H, W); the all-in-one model is decoder=True.

    Any H, W work: the input is reflect-padded at the bottom/right to multiples of 8 (as the official demo does)
    and the output cropped back, so sizes already divisible by 8 give exactly the official output.

    The official code fixes the prompt widths for dim=48, so decoder=True needs dim=48. With decoder=False the
    official model builds (its parameters can be counted and its checkpoints loaded) but cannot run: `up4_3`
    expects the 4*dim-channel prompt-fused latent; use Restormer for a prompt-free backbone.

    Args:
        inp_channels: input channels. Default: 3.
        out_channels: output channels (must equal inp_channels: the output adds the input). Default: 3.
        dim: channels at level 1. Default: 48.
        num_blocks: transformer blocks at levels 1-4. Default: [4, 6, 6, 8].
        num_refinement_blocks: blocks after the decoder, at full resolution. Default: 4.
        heads: attention heads at levels 1-4 (the prompt fusion blocks use heads[2]). Default: [1, 2, 4, 8].
        ffn_expansion_factor: GDFN hidden width over its input width. Default: 2.66.
        bias: biases in the convolutions. Default: False.
        LayerNorm_type: 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        decoder: insert the prompt blocks into the decoder (the published all-in-one model). Default: False.
        uncertainty_head: add the TUR uncertainty head on the refined full-resolution features (2 dim channels).
            Default: False.
        uncertainty_detach: the head reads those features detached, so the σ term of TURLoss never reaches the
            backbone. Default: False (the authors'); the measurement that motivates it is in
            basicsr_tur/archs/uncertainty.py.
    """

    size_multiple = SIZE_MULTIPLE
    unused_parameter_prefixes = ('chnl_reduce1.', 'chnl_reduce2.', 'chnl_reduce3.', 'reduce_noise_channel_1.',
                                 'reduce_noise_channel_2.', 'reduce_noise_channel_3.')

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', decoder: bool = False, uncertainty_head: bool = False,
                 uncertainty_detach: bool = False) -> None:
        super().__init__()
        check_restormer_args('PromptIR', num_blocks, heads, LayerNorm_type)
        if inp_channels != out_channels:
            raise UserError(f'PromptIR: the image residual needs inp_channels == out_channels, '
                             f'got {inp_channels} and {out_channels}')
        if decoder and dim != OFFICIAL_DIM:
            raise UserError(f'PromptIR: decoder=True needs dim={OFFICIAL_DIM} (the official prompt widths are '
                             f'fixed for it), got dim={dim}')

        def stage(n: int, width: int, n_heads: int) -> nn.Sequential:
            return transformer_stage(n, width, n_heads, ffn_expansion_factor, bias, LayerNorm_type)

        def fusion_block(width: int) -> TransformerBlock:
            return TransformerBlock(width, heads[2], ffn_expansion_factor, bias, LayerNorm_type)

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.decoder = decoder
        if decoder:
            self.prompt1 = PromptGenBlock(prompt_dim=64, prompt_len=5, prompt_size=64, lin_dim=96)
            self.prompt2 = PromptGenBlock(prompt_dim=128, prompt_len=5, prompt_size=32, lin_dim=192)
            self.prompt3 = PromptGenBlock(prompt_dim=320, prompt_len=5, prompt_size=16, lin_dim=384)
        # Built but never used in the official forward; kept so that the released checkpoint loads strictly.
        self.chnl_reduce1 = nn.Conv2d(64, 64, kernel_size=1, bias=bias)
        self.chnl_reduce2 = nn.Conv2d(128, 128, kernel_size=1, bias=bias)
        self.chnl_reduce3 = nn.Conv2d(320, 256, kernel_size=1, bias=bias)
        self.reduce_noise_channel_1 = nn.Conv2d(dim + 64, dim, kernel_size=1, bias=bias)

        self.encoder_level1 = stage(num_blocks[0], dim, heads[0])
        self.down1_2 = Downsample(dim)
        self.reduce_noise_channel_2 = nn.Conv2d(dim * 2 + 128, dim * 2, kernel_size=1, bias=bias)  # unused
        self.encoder_level2 = stage(num_blocks[1], dim * 2, heads[1])
        self.down2_3 = Downsample(dim * 2)
        self.reduce_noise_channel_3 = nn.Conv2d(dim * 4 + 256, dim * 4, kernel_size=1, bias=bias)  # unused
        self.encoder_level3 = stage(num_blocks[2], dim * 4, heads[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = stage(num_blocks[3], dim * 8, heads[3])

        # Unlike Restormer, up4_3 takes the latent after the prompt fusion has reduced it to 4*dim channels.
        self.up4_3 = Upsample(dim * 4)
        self.reduce_chan_level3 = nn.Conv2d(dim * 2 + 192, dim * 4, kernel_size=1, bias=bias)
        self.noise_level3 = fusion_block(dim * 4 + 512)
        self.reduce_noise_level3 = nn.Conv2d(dim * 4 + 512, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = stage(num_blocks[2], dim * 4, heads[2])

        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.noise_level2 = fusion_block(dim * 2 + 224)
        self.reduce_noise_level2 = nn.Conv2d(dim * 2 + 224, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level2 = stage(num_blocks[1], dim * 2, heads[1])

        self.up2_1 = Upsample(dim * 2)
        self.noise_level1 = fusion_block(dim * 2 + 64)
        self.reduce_noise_level1 = nn.Conv2d(dim * 2 + 64, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level1 = stage(num_blocks[0], dim * 2, heads[0])
        self.refinement = stage(num_refinement_blocks, dim * 2, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)
        self._init_uncertainty('PromptIR', uncertainty_head, uncertainty_detach, out_channels)

    @staticmethod
    def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
        """Map the authors' TUR keys (`PromptIR_uncertainty`: head `var_conv.*`) to ours."""
        return rename_authors_head(state_dict, 'PromptIR')

    def forward(self, x: torch.Tensor,
                with_uncertainty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore x; with_uncertainty=True also returns the uncertainty map (B, out_channels, H, W)."""
        if not self.decoder:
            raise UserError('PromptIR: decoder=False cannot run forward (the official up4_3 expects the '
                             'prompt-fused latent); use decoder=True, or Restormer for a prompt-free backbone')
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x)
        enc1 = self.encoder_level1(self.patch_embed(inp))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))

        # At each decoder level: concatenate a prompt, mix with a transformer block, reduce the channels.
        latent = self.reduce_noise_level3(self.noise_level3(torch.cat([latent, self.prompt3(latent)], 1)))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec3 = self.reduce_noise_level2(self.noise_level2(torch.cat([dec3, self.prompt2(dec3)], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec2 = self.reduce_noise_level1(self.noise_level1(torch.cat([dec2, self.prompt1(dec2)], 1)))
        feat = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))
        out = self.output(feat) + inp
        # The head sees the cropped features, so the uncertainty covers exactly the output's pixels.
        return self._restore_output(out[..., :h, :w], feat[..., :h, :w], with_uncertainty)
