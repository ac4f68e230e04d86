"""AirNet's two training recipes on top of TURModel.

- Official AirNet (XLearning-SCU/2022-CVPR-AirNet `train.py`): the MoCo encoder trains with InfoNCE, first alone
  (encoder warm-up), then jointly with the restorer (pixel loss + 0.1 InfoNCE).
- AirNet-TUR as its authors trained it (Aitical/TUR `AirNet_uncertainty(fix_E=True)` with `AIRnet_uncertainty`):
  the encoder comes from a trained AirNet checkpoint and is frozen; only the restorer (and the uncertainty head)
  trains, on the TUR loss alone, and the encoder runs as the query encoder without a key crop or InfoNCE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_tur.models.tur_model import TURModel
from basicsr_tur.utils.checkpoint import HEAD_PREFIX, read_state_dict
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.option_checks import PATH, Kind

# The MoCo queue (E.E.queue, E.E.queue_ptr) is left out: only the contrastive step reads it, and its length is the
# batch size the checkpoint was trained with times encoder_dim (All.pth: 5 x 256), not ours.
ENCODER_PREFIXES = ('E.E.encoder_q.', 'E.E.encoder_k.')


def load_encoder_checkpoint(net: torch.nn.Module, path: str) -> None:
    """Copy the query and key encoder tensors (`E.E.encoder_q.*`, `E.E.encoder_k.*`) of an AirNet checkpoint into net.

    The file may be a plain state dict (the official `All.pth`) or ours (`params` preferred to `params_ema`: the EMA
    of runs before issue 20 averaged parameters only, as basicsr's does, so their EMA copies hold stale BatchNorm
    statistics; train_step.update_ema now copies buffers). Every encoder tensor of net must
    be in the file with its shape; all other keys of the file (restorer, head, queue) are ignored.
    Raises FileNotFoundError, or ValueError naming the file when it cannot be read or holds no matching encoder.
    """
    where = f'path.pretrain_network_encoder: {path}'
    try:
        state = read_state_dict(path, 'params', where)
    except (KeyError, TypeError) as err:
        raise UserError(err.args[0]) from None
    if not any(k.startswith('E.') for k in state):
        raise UserError(f"{where}: no AirNet encoder tensors ('E.*' keys) in it; expected an AirNet checkpoint "
                         'such as the official All.pth')
    own = {k: v for k, v in net.state_dict().items() if k.startswith(ENCODER_PREFIXES)}
    missing = [k for k in own if k not in state]
    if missing:
        raise UserError(f"{where}: lacks {len(missing)} of the {len(own)} encoder tensors, e.g. '{missing[0]}'")
    for key, value in own.items():
        if state[key].shape != value.shape:
            raise UserError(f"{where}: '{key}' has shape {tuple(state[key].shape)}, the network expects "
                             f'{tuple(value.shape)} (check network_g.encoder_dim)')
    net.load_state_dict({k: state[k] for k in own}, strict=False)
    get_root_logger().info(f'{where}: loaded {len(own)} encoder tensors (query and key encoders)')


@MODEL_REGISTRY.register()
class AirNetModel(TURModel):
    """TURModel for `AirNet`, with the official recipe (default) or TUR's frozen encoder (`train.fix_encoder`).

    Train options (beside TURModel's):
        fix_encoder: TUR's recipe. The encoder is loaded from `path.pretrain_network_encoder` (or comes with
            `path.pretrain_network_g`, e.g. on resume), frozen before the network is wrapped (no gradients, not in
            the optimizer), and run in training as the query encoder alone: no key crop, no InfoNCE, the pixel loss
            only. The network stays in training mode as in TUR, so the encoder's BatchNorm layers use batch
            statistics and keep updating their running statistics (used by validation and the saved model).
            `contrast_weight` and `encoder_warmup_iter` are refused with it. Default: false.
        contrast_weight: weight of the InfoNCE loss of the MoCo encoder. Default: 0.1 (official).
        encoder_warmup_iter: iterations that train the encoder alone with InfoNCE before the restorer joins
            (the official recipe: the first 100 epochs). Default: 0.
    Path options: pretrain_network_encoder: an AirNet checkpoint whose query/key encoder tensors are loaded (only
        with fix_encoder; see load_encoder_checkpoint); it overrides the encoder of `pretrain_network_g`.
    The official recipe needs `lq_key` in each training batch (`key_crop: true` on the train dataset). The pixel
    loss (TURLoss or L1Loss) applies to the restored output exactly as in TURModel.
    """

    # TURModel's keys and the two recipes' own. A null contrast_weight or encoder_warmup_iter is read as absent
    # (--force_yml can set a key to null, not remove it).
    OPTION_KEYS: dict[str, Kind | None] = {
        **TURModel.OPTION_KEYS,
        'train.fix_encoder': Kind.of(bool, null=True).doc(
            "TUR's recipe: a loaded, frozen encoder; the pixel loss only", default=False),
        'path.pretrain_network_encoder': PATH.doc(
            'an AirNet checkpoint whose encoder is loaded (with fix_encoder)', default=None),
        'train.contrast_weight': Kind.of(float, null=True, minimum=0).doc(
            "weight of the encoder's InfoNCE loss", default=0.1),
        'train.encoder_warmup_iter': Kind.of(int, null=True, minimum=0).doc(
            'iterations that train the encoder alone before the restorer joins', default=0),
    }

    def __init__(self, opt: dict) -> None:
        # Under DDP, the official recipe's encoder warm-up starts with the restorer kept out of DDP (it idles); the
        # first joint step wraps the network again with everything (optimize_parameters, unreached_parameters).
        train_opt = opt.get('train') or {}
        self.warmup_wrapping = bool(opt['is_train'] and opt['dist'] and not train_opt.get('fix_encoder')
                                    and (train_opt.get('encoder_warmup_iter') or 0) > 0)
        super().__init__(opt)

    def unreached_parameters(self, net: torch.nn.Module) -> set[str]:
        """TURModel's for the frozen encoder (net(x) alone trains). In the official recipe the contrastive step
        reaches the whole encoder, so only an uncertainty head the loss does not read is left; during the encoder
        warm-up (until the first joint step wraps the network again) the restorer and the head too."""
        if not self.is_train or self.fix_encoder:
            return super().unreached_parameters(net)
        idle = ('R.', HEAD_PREFIX) if self.warmup_wrapping else () if self.loss_reads_uncertainty() else (HEAD_PREFIX,)
        return {name for name, param in net.named_parameters() if param.requires_grad and name.startswith(idle)}

    def optimize_parameters(self, current_iter: int, step: bool = True) -> None:
        """TURModel's step; under DDP, the first step after the encoder warm-up first wraps the network again with
        the restorer in DDP.

        Why not find_unused_parameters: it would search the autograd graph at every step of the whole run for the
        sake of the warm-up. Why not a zero-weighted restorer loss in the warm-up: zero gradients are not absent
        ones; Adam(W) would count steps, decay moments and weights of a restorer the official recipe leaves
        untouched. A new DistributedDataParallel is built once, on every rank at the same iteration (the warm-up
        length is an option); micro-batches of that iteration run under no_sync, so their gradients accumulate
        locally and are reduced, whole, by the new wrapper at the step.
        """
        if self.warmup_wrapping and current_iter > self.encoder_warmup_iter:
            self.warmup_wrapping = False
            bare = self.get_bare_model(self.net_g)
            self.net_g = self.distributed(bare, self.unreached_parameters(bare))
            compile_opt = self.opt['train'].get('compile')
            if compile_opt:  # as TURModel.__init__ compiles the wrapped network
                self.net_g = torch.compile(self.net_g, **(compile_opt if isinstance(compile_opt, dict) else {}))
            self.train_step.net = self.net_g  # the step's no_sync comes from the new wrapper
            get_root_logger().info(f'iter {current_iter}: encoder warm-up over; the restorer joins DDP')
        super().optimize_parameters(current_iter, step)

    def load_pretrained(self, net: torch.nn.Module) -> None:
        """pretrain_network_g, then for `train.fix_encoder` the encoder checkpoint and the freezing (before DDP)."""
        super().load_pretrained(net)
        train_opt = (self.opt.get('train') or {}) if self.is_train else {}
        self.fix_encoder = bool(train_opt.get('fix_encoder', False))
        encoder_path = self.opt['path'].get('pretrain_network_encoder') if self.is_train else None
        if not self.fix_encoder:
            if encoder_path is not None:
                raise UserError('path.pretrain_network_encoder is read only with train.fix_encoder: true (the '
                                 'official recipe trains the encoder from scratch)')
            return
        for key in ('contrast_weight', 'encoder_warmup_iter'):
            if train_opt.get(key) is not None:  # null is absent: --force_yml can set a key to null, not remove it
                raise UserError(f'train.{key} is refused with train.fix_encoder: true (a frozen encoder takes no '
                                 f'contrastive loss and no warm-up); remove it')
        if encoder_path is None and self.opt['path'].get('pretrain_network_g') is None:
            raise UserError('train.fix_encoder: true freezes the encoder, which needs trained weights: set '
                             'path.pretrain_network_encoder to an AirNet checkpoint (e.g. the official All.pth)')
        if encoder_path is not None:
            load_encoder_checkpoint(net, encoder_path)
        net.freeze_encoder()
        if ((self.opt.get('datasets') or {}).get('train') or {}).get('key_crop'):
            get_root_logger().warning('datasets.train.key_crop: the second crop is unused with train.fix_encoder '
                                      '(set key_crop: false to skip it)')

    def init_training_settings(self) -> None:
        """TURModel's settings plus, for the official recipe, the contrastive weight and the warm-up length."""
        super().init_training_settings()
        train_opt = self.opt['train']
        weight, warmup = train_opt.get('contrast_weight'), train_opt.get('encoder_warmup_iter')
        self.contrast_weight = 0.1 if weight is None else float(weight)
        self.encoder_warmup_iter = 0 if warmup is None else int(warmup)

    def feed_data(self, data: dict) -> None:
        """TURModel's batch plus `lq_key`, the second crop for the contrastive encoder (official recipe only)."""
        super().feed_data(data)
        self.lq_key = self.batch_images(data, 'lq_key') if 'lq_key' in data and not self.fix_encoder else None

    def compute_losses(self, current_iter: int) -> tuple[torch.Tensor, dict]:
        """Frozen encoder: TURModel's pixel loss. Official: encoder-only InfoNCE, then pixel + weight · InfoNCE."""
        if self.fix_encoder:
            return super().compute_losses(current_iter)
        if self.lq_key is None:
            raise UserError("AirNetModel needs 'lq_key' in each training batch: set key_crop: true on "
                             'datasets.train (or train.fix_encoder: true for TUR\'s frozen encoder)')
        if current_iter <= self.encoder_warmup_iter:
            result = self.net_g(self.lq, self.lq_key, encoder_only=True)
            l_con = F.cross_entropy(result['logits'], result['labels'])
            return l_con, {'l_contrast': l_con}
        result = self.net_g(self.lq, self.lq_key, with_uncertainty=self.needs_uncertainty)
        self.output = result['restored']
        self.check_output_shape()
        l_pix = self.pixel_loss(result.get('uncertainty'))
        l_con = F.cross_entropy(result['logits'], result['labels'])
        l_total = l_pix + self.contrast_weight * l_con
        return l_total, {'l_total': l_total, 'l_pix': l_pix, 'l_contrast': l_con, 'tasks': self.task_figures()}
