"""AirNet's training recipe on top of TURModel: contrastive encoder loss beside the restoration loss, and the
encoder-only warm-up (XLearning-SCU/2022-CVPR-AirNet `train.py`; Aitical/TUR trains AirNet-TUR the same way)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_tur.models.tur_model import TURModel


@MODEL_REGISTRY.register()
class AirNetModel(TURModel):
    """TURModel for `AirNet`: each training batch needs `lq_key` (set `key_crop: true` on the train dataset).

    Train options (beside TURModel's):
        contrast_weight: weight of the InfoNCE loss of the MoCo encoder. Default: 0.1 (official).
        encoder_warmup_iter: iterations that train the encoder alone with InfoNCE before the restorer joins
            (the official recipe: the first 100 epochs). Default: 0.
    The pixel loss (TURLoss or L1Loss) applies to the restored output exactly as in TURModel.
    """

    def __init__(self, opt: dict) -> None:
        # The restorer sits idle during the encoder warm-up: DDP must be told that parameters may go unused.
        opt.setdefault('find_unused_parameters', True)
        super().__init__(opt)

    def init_training_settings(self) -> None:
        """TURModel's settings plus the contrastive weight and the warm-up length."""
        super().init_training_settings()
        train_opt = self.opt['train']
        self.contrast_weight = float(train_opt.get('contrast_weight', 0.1))
        self.encoder_warmup_iter = int(train_opt.get('encoder_warmup_iter', 0))

    def feed_data(self, data: dict) -> None:
        """TURModel's batch plus `lq_key`, the second crop for the contrastive encoder (training only)."""
        super().feed_data(data)
        self.lq_key = data['lq_key'].to(self.device) if 'lq_key' in data else None

    def compute_losses(self, current_iter: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Encoder-only InfoNCE during warm-up; afterwards pixel loss + contrast_weight · InfoNCE."""
        if self.lq_key is None:
            raise ValueError("AirNetModel needs 'lq_key' in each training batch: set key_crop: true on "
                             'datasets.train')
        if current_iter <= self.encoder_warmup_iter:
            result = self.net_g(self.lq, self.lq_key, encoder_only=True)
            l_con = F.cross_entropy(result['logits'], result['labels'])
            return l_con, {'l_contrast': l_con.item()}
        result = self.net_g(self.lq, self.lq_key, with_uncertainty=self.needs_uncertainty)
        self.output = result['restored']
        if self.needs_uncertainty:
            l_pix = self.cri_pix(self.output, self.gt, result['uncertainty'], self.task_ids)
        else:
            l_pix = self.cri_pix(self.output, self.gt)
        l_con = F.cross_entropy(result['logits'], result['labels'])
        l_total = l_pix + self.contrast_weight * l_con
        return l_total, {'l_total': l_total.item(), 'l_pix': l_pix.item(), 'l_contrast': l_con.item(),
                         **self.task_figures()}
