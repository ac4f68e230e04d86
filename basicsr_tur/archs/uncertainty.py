"""The TUR uncertainty head, shared by every backbone.

conv3×3 – ELU – conv3×3 – ELU – conv3×3 – softplus on the backbone's last feature map, as in the authors' code
(`var_conv` in Aitical/TUR). It lives under its own `uncertainty_head.` key prefix, so a plain backbone checkpoint
loads into a model with the head (only the head's keys missing) and the head is never run at inference.
"""
from __future__ import annotations

import torch
from torch import nn

HEAD_PREFIX = 'uncertainty_head.'


class UncertaintyHead(nn.Sequential):
    """Map features (B, num_feat, H, W) to a strictly positive uncertainty map (B, num_out_ch, H, W)."""

    def __init__(self, num_feat: int, num_out_ch: int = 3) -> None:
        super().__init__(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ELU(),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ELU(),
            nn.Conv2d(num_feat, num_out_ch, 3, 1, 1), nn.Softplus())


class UncertaintyMixin:
    """Gives a backbone an optional uncertainty head and one way to return (restored, uncertainty).

    A backbone calls `_init_uncertainty(...)` in its constructor and ends its forward with
    `return self._restore_output(out, feat, with_uncertainty)`; `net(x)` then always returns exactly the backbone's
    output, and `net(x, with_uncertainty=True)` also returns the head's map from the same forward pass.
    """

    uncertainty_head: nn.Module | None

    def _init_uncertainty(self, enabled: bool, num_feat: int, num_out_ch: int) -> None:
        self.uncertainty_head = UncertaintyHead(num_feat, num_out_ch) if enabled else None

    def _restore_output(self, out: torch.Tensor, feat: torch.Tensor,
                        with_uncertainty: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not with_uncertainty:
            return out
        if self.uncertainty_head is None:
            raise RuntimeError(f'{type(self).__name__} was built without its uncertainty head; '
                               'set `uncertainty_head: true` in network_g to train with TURLoss')
        return out, self.uncertainty_head(feat)
