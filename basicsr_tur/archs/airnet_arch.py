"""AirNet (Li et al., CVPR 2022): a contrastive degradation encoder (CBDE, MoCo) steering a restorer (DGRN).

State-dict keys match the official `net/model.py` of XLearning-SCU/2022-CVPR-AirNet (`R.*` restorer, `E.E.*` MoCo
with `encoder_q`, `encoder_k`, `queue`, `queue_ptr`), so the released `All.pth` / `Denoise.pth` / `Derain.pth` /
`Dehaze.pth` (plain `torch.save(net.state_dict())`) load with strict=True. The compiled mmcv modulated deformable
convolution is replaced by `torchvision.ops.deform_conv2d`, which takes the same offset/mask layout. The optional
TUR uncertainty head reads the DGRN body output plus its head skip (`res`, 64 channels) before the tail, where the
authors' `DGRN_uncertainty` puts its `var_conv` (HEAD_SPECS['AirNet'], torch's default conv init as theirs); their
TUR checkpoints (head `R.var_conv.*`) load through `checkpoint_filter_fn`.
"""
from __future__ import annotations

import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F
from torchvision.ops import deform_conv2d

from basicsr_tur.archs.uncertainty import UncertaintyMixin, rename_authors_head
from basicsr_tur.utils.errors import UserError


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """A same-size convolution (B, in_channels, H, W) -> (B, out_channels, H, W)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


# ----------------------------------------------------------------------------------------------------------------
# Restorer: DGRN = head conv, n_groups x DGG (each n_blocks x DGB + conv), conv, tail conv.
# ----------------------------------------------------------------------------------------------------------------

class DCNLayer(nn.Module):
    """Modulated deformable conv whose offsets and mask come from [x, inter]: (B, C, H, W) x2 -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # 2 offsets (dy, dx) and 1 modulation scalar per kernel tap.
        self.conv_offset_mask = nn.Conv2d(in_channels * 2, 3 * kernel_size * kernel_size, kernel_size,
                                          padding=padding, bias=True)
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        # Zero offsets and a constant 0.5 mask at start: the layer begins as half a plain convolution.
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset_mask(torch.cat([x, inter], dim=1)), 3, dim=1)
        # torchvision reads offsets in mmcv's interleaved (dy, dx) per-tap layout, so the official
        # cat(o1, o2) is passed unchanged (as basicsr's DCNv2Pack does).
        offset = torch.cat([o1, o2], dim=1)
        # The deformable convolution always runs in float32 (torchvision's CPU kernel has no bfloat16/half version,
        # and autocast does not cover it on CPU); under mixed precision its output goes back to the input's dtype.
        with torch.autocast(x.device.type, enabled=False):
            bias = None if self.bias is None else self.bias.float()
            out = deform_conv2d(x.float(), offset.float(), self.weight.float(), bias, padding=self.padding,
                                mask=torch.sigmoid(mask.float()))
        return out.to(x.dtype)


class SFTLayer(nn.Module):
    """Spatial feature transform x * gamma(inter) + beta(inter) with 1x1 conv branches: (B, C, H, W)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv_gamma = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False), nn.LeakyReLU(0.1, True),
                                        nn.Conv2d(channels_out, channels_out, 1, bias=False))
        self.conv_beta = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False), nn.LeakyReLU(0.1, True),
                                       nn.Conv2d(channels_out, channels_out, 1, bias=False))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        return x * self.conv_gamma(inter) + self.conv_beta(inter)


class DGM(nn.Module):
    """Degradation-guided module: x + DCN(x | inter) + SFT(x | inter), (B, C, H, W)."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int) -> None:
        super().__init__()
        self.dcn = DCNLayer(channels_in, channels_out, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.sft = SFTLayer(channels_in, channels_out)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        return x + self.dcn(x, inter) + self.sft(x, inter)


class DGB(nn.Module):
    """Degradation-guided residual block: DGM, conv, DGM, conv, plus the input, (B, C, H, W)."""

    def __init__(self, n_feat: int, kernel_size: int) -> None:
        super().__init__()
        self.dgm1 = DGM(n_feat, n_feat, kernel_size)
        self.dgm2 = DGM(n_feat, n_feat, kernel_size)
        self.conv1 = default_conv(n_feat, n_feat, kernel_size)
        self.conv2 = default_conv(n_feat, n_feat, kernel_size)
        self.relu = nn.LeakyReLU(0.1, True)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.dgm1(x, inter))
        out = self.relu(self.conv1(out))
        out = self.relu(self.dgm2(out, inter))
        return self.conv2(out) + x


class DGG(nn.Module):
    """Degradation-guided group: n_blocks DGBs and a conv, with a group residual, (B, C, H, W)."""

    def __init__(self, n_feat: int, kernel_size: int, n_blocks: int) -> None:
        super().__init__()
        # One Sequential holding the blocks then the conv keeps the official `body.<i>` key numbering.
        self.body = nn.Sequential(*[DGB(n_feat, kernel_size) for _ in range(n_blocks)],
                                  default_conv(n_feat, n_feat, kernel_size))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        res = x
        for block in self.body[:-1]:
            res = block(res, inter)
        return self.body[-1](res) + x


class DGRN(nn.Module):
    """Degradation-guided restoration network: (x (B, 3, H, W), inter (B, C, H, W)) -> (restored, body features)."""

    def __init__(self, n_groups: int = 5, n_blocks: int = 5, n_feats: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        self.head = nn.Sequential(default_conv(3, n_feats, kernel_size))
        self.body = nn.Sequential(*[DGG(n_feats, kernel_size, n_blocks) for _ in range(n_groups)],
                                  default_conv(n_feats, n_feats, kernel_size))
        self.tail = nn.Sequential(default_conv(n_feats, 3, kernel_size))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.head(x)
        res = x
        for group in self.body[:-1]:
            res = group(res, inter)
        res = self.body[-1](res) + x
        # No image-level residual: the tail conv alone produces the restored image, as in the official DGRN.
        return self.tail(res), res


# ----------------------------------------------------------------------------------------------------------------
# Encoder: CBDE = MoCo over two ResEncoders (query, momentum key) with a queue of negative keys.
# ----------------------------------------------------------------------------------------------------------------

class ResBlock(nn.Module):
    """Conv-BN residual block with a 1x1 projection shortcut: (B, in_feat, H, W) -> (B, out_feat, H/s, W/s)."""

    def __init__(self, in_feat: int, out_feat: int, stride: int = 1) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(in_feat, out_feat, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_feat),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(out_feat, out_feat, 3, padding=1, bias=False), nn.BatchNorm2d(out_feat))
        self.shortcut = nn.Sequential(nn.Conv2d(in_feat, out_feat, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(out_feat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.backbone(x) + self.shortcut(x), 0.1)


class ResEncoder(nn.Module):
    """Degradation encoder: x (B, 3, H, W) -> (pooled (B, 256), embedding (B, dim), inter (B, 64, H, W))."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.E_pre = ResBlock(3, 64, stride=1)
        self.E = nn.Sequential(ResBlock(64, 128, stride=2), ResBlock(128, 256, stride=2), nn.AdaptiveAvgPool2d(1))
        self.mlp = nn.Sequential(nn.Linear(256, 256), nn.LeakyReLU(0.1, True), nn.Linear(256, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inter = self.E_pre(x)
        fea = self.E(inter).flatten(1)
        return fea, self.mlp(fea), inter


class MoCo(nn.Module):
    """MoCo (He et al., 2020) as AirNet uses it: a query encoder, a momentum key encoder and a queue (dim, K)."""

    def __init__(self, dim: int = 256, K: int = 3 * 256, m: float = 0.999, T: float = 0.07) -> None:
        super().__init__()
        self.K, self.m, self.T = K, m, T
        self.encoder_q = ResEncoder(dim)
        self.encoder_k = ResEncoder(dim)
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.copy_(param_q.data)
            param_k.requires_grad = False  # updated by momentum only
        self.register_buffer('queue', F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))
        # The pointer as the host reads it: the buffer is what checkpoints keep, but reading it each step would make
        # the host wait for the device (issue 20); loading a state dict sets both.
        self.host_ptr = 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.host_ptr = int(self.queue_ptr)

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        """key ← m · key + (1 − m) · query over every parameter, by foreach kernels (the official per-parameter loop's
        arithmetic: both products rounded, then their sum)."""
        keys, queries = list(self.encoder_k.parameters()), list(self.encoder_q.parameters())
        torch._foreach_mul_(keys, self.m)
        torch._foreach_add_(keys, torch._foreach_mul(queries, 1.0 - self.m))

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        batch_size = keys.shape[0]
        ptr = self.host_ptr
        if self.K % batch_size != 0:
            raise UserError(f'AirNet MoCo: the key batch size {batch_size} must divide the queue length {self.K} '
                             f'(= batch_size x encoder_dim of the constructor); train with a fixed batch size '
                             f'(drop_last) that divides it')
        if ptr + batch_size > self.K:
            raise UserError(f'AirNet MoCo: {batch_size} keys do not fit the queue at position {ptr} of {self.K}; '
                             f'the batch size changed between steps')
        self.queue[:, ptr:ptr + batch_size] = keys.t()
        self.host_ptr = (ptr + batch_size) % self.K
        self.queue_ptr.fill_(self.host_ptr)

    def forward(self, im_q: torch.Tensor,
                im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One contrastive step: (pooled (B, 256), logits (B, 1 + K), labels (B,) zeros, inter (B, 64, H, W))."""
        embedding, q, inter = self.encoder_q(im_q)
        q = F.normalize(q, dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            k = F.normalize(self.encoder_k(im_k)[1], dim=1)
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        self._dequeue_and_enqueue(k)
        return embedding, logits, labels, inter


class CBDE(nn.Module):
    """Contrastive-based degradation encoder; a thin holder so that keys read `E.E.*` as in the official model."""

    def __init__(self, encoder_dim: int = 256, batch_size: int = 5, m: float = 0.999, T: float = 0.07) -> None:
        super().__init__()
        self.E = MoCo(dim=encoder_dim, K=batch_size * encoder_dim, m=m, T=T)


# ----------------------------------------------------------------------------------------------------------------
# AirNet
# ----------------------------------------------------------------------------------------------------------------

@ARCH_REGISTRY.register()
class AirNet(UncertaintyMixin, nn.Module):
    """AirNet: CBDE degradation encoder + DGRN restorer, (B, 3, H, W) -> (B, 3, H, W), any H and W.

    Args:
        encoder_dim: MoCo embedding size (the MLP output and the queue's rows). Default: 256.
        batch_size: training batch size; the MoCo queue holds batch_size * encoder_dim keys, so it fixes the
            `E.E.queue` shape of a checkpoint: All.pth 5 (3-task setting), Denoise.pth 3, Derain/Dehaze.pth 1.
            Default: 5.
        n_groups, n_blocks, n_feats, kernel_size: DGRN size (hard-coded 5, 5, 64, 3 in the official code; smaller
            only for tests). `n_feats` must be 64, the width of the encoder's `inter` map.
        m: MoCo key-encoder momentum. Default: 0.999.
        T: InfoNCE temperature. Default: 0.07.
        uncertainty_head: add the TUR uncertainty head on the DGRN body output. Default: False.
        uncertainty_detach: the head reads that output detached, so the σ term of TURLoss never reaches the restorer
            or the encoder. Default: False (the authors'); the measurement that motivates it is in
            basicsr_tur/archs/uncertainty.py.

    Calls:
        `net(x)` / `net(x, with_uncertainty=True)`: restore x with the query encoder only (the official inference
        path; in training mode the same path with BatchNorm in batch mode, as TUR trains with a fixed encoder).
        Returns restored (B, 3, H, W), or (restored, uncertainty) with uncertainty (B, 3, H, W) > 0.
        `net(x_query, x_key, with_uncertainty=False)` in training mode: the official joint step. Returns a dict
        {'restored', 'logits' (B, 1 + K), 'labels' (B,) zeros, and 'uncertainty' when asked}; the official loss
        is L1(restored, gt) + 0.1 * CrossEntropy(logits, labels). In eval mode x_key is ignored.
        `net.encoder_forward(x_query, x_key)` -> (inter, logits, labels): the contrastive step alone, for the
        official encoder-only warm-up epochs (loss CrossEntropy(logits, labels)); the restorer is not run.
        Each contrastive step updates the key encoder by momentum and enqueues the B keys (B must divide K).
        `net.freeze_encoder()`: TUR's `fix_E=True` (Aitical/TUR `AirNet_uncertainty`): every encoder parameter
        stops requiring gradients and the contrastive calls are refused; `net(x)` in training mode is then TUR's
        training path `CBDE.inference(x)` = encoder_q(x) with the restorer on top. As in TUR, freezing touches
        parameters only: in training mode the encoder's BatchNorm layers still normalise with batch statistics and
        update their running statistics, which the eval path then uses.
    """

    # The restorer reads the query encoder's `inter` map only; its deeper layers and MLP serve the contrastive step.
    unused_parameter_prefixes = ('E.E.encoder_q.E.', 'E.E.encoder_q.mlp.')

    def __init__(self, encoder_dim: int = 256, batch_size: int = 5, n_groups: int = 5, n_blocks: int = 5,
                 n_feats: int = 64, kernel_size: int = 3, m: float = 0.999, T: float = 0.07,
                 uncertainty_head: bool = False, uncertainty_detach: bool = False) -> None:
        super().__init__()
        if n_feats != 64:
            raise UserError(f'AirNet: n_feats must be 64, the channels of the encoder map `inter`, got {n_feats}')
        self.R = DGRN(n_groups, n_blocks, n_feats, kernel_size)
        self.E = CBDE(encoder_dim, batch_size, m, T)
        self._init_uncertainty('AirNet', uncertainty_head, uncertainty_detach, 3)
        self.encoder_frozen = False

    @staticmethod
    def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
        """Map the authors' TUR checkpoint (`AirNet_uncertainty`: head `R.var_conv.*`) to our keys.

        Its MoCo queue `E.E.queue` is (256, batch_size * 256) with the authors' default batch_size 32: build the
        model with the same batch_size to load it.
        """
        return rename_authors_head(state_dict, 'AirNet')

    def freeze_encoder(self) -> None:
        """Stop training the encoder (TUR's fix_E): its parameters stop requiring gradients, contrastive calls raise."""
        for param in self.E.parameters():
            param.requires_grad_(False)
        self.encoder_frozen = True

    def encoder_forward(self, x_query: torch.Tensor,
                        x_key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contrastive step on two crops (B, 3, H, W): (inter (B, 64, H, W), logits (B, 1 + K), labels (B,))."""
        if self.encoder_frozen:
            # The step would still move the key encoder by momentum and overwrite the queue.
            raise RuntimeError('AirNet: the encoder is frozen (freeze_encoder), so the contrastive step is refused; '
                               'call net(x) without x_key')
        _, logits, labels, inter = self.E.E(x_query, x_key)
        return inter, logits, labels

    def forward(self, x: torch.Tensor, x_key: torch.Tensor | None = None, with_uncertainty: bool = False,
                encoder_only: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        """Restore x (B, 3, H, W); see the class docstring for the training call with x_key.

        encoder_only=True (with x_key) runs only the contrastive step and returns {'logits', 'labels'}: the warm-up
        goes through forward so that a DistributedDataParallel wrapper synchronises its gradients.
        """
        if x_key is not None and not isinstance(x_key, torch.Tensor):
            # Other backbones take with_uncertainty second; here the second argument is the key crop.
            raise TypeError(f'AirNet: x_key must be a tensor or None, got {x_key!r}; '
                            'pass with_uncertainty by keyword')
        if encoder_only:
            if x_key is None:
                raise ValueError('AirNet: encoder_only needs x_key, the second crop')
            _, logits, labels = self.encoder_forward(x, x_key)
            return {'logits': logits, 'labels': labels}
        if self.training and x_key is not None:
            inter, logits, labels = self.encoder_forward(x, x_key)
            out, feat = self.R(x, inter)
            result = {'restored': out, 'logits': logits, 'labels': labels}
            if with_uncertainty:
                result['uncertainty'] = self._restore_output(out, feat, True)[1]
            return result
        inter = self.E.E.encoder_q(x)[2]
        out, feat = self.R(x, inter)
        return self._restore_output(out, feat, with_uncertainty)
