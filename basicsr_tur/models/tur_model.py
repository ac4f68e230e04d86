"""The all-in-one restoration model: TUR (or plain L1) training, EMA, per-task logging and per-task validation."""
from __future__ import annotations

import inspect
import itertools
import math
from collections import OrderedDict, defaultdict
from os import path as osp

import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from torch.nn import DataParallel
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import SequentialSampler
from tqdm import tqdm

from basicsr_tur.data.data_util import unit_tensor
from basicsr_tur.data.device_degradations import degrade_batch
from basicsr_tur.data.samplers import ShardSampler
from basicsr_tur.losses.tur_loss import check_task_range, task_means
from basicsr_tur.metrics import image_kind, metric_window, unit_image
from basicsr_tur.models.train_step import NonFiniteLossError, StepContext, TaskFigures, TrainStep, ema_pairs, update_ema
from basicsr_tur.utils.calibration import SAMPLE_PER_IMAGE, pixel_error, sample_pixels, uncertainty_figures
from basicsr_tur.utils.checkpoint import (
    HEAD_PREFIX,
    capture_rng_state,
    load_checkpoint,
    read_weights,
    restore_rng_state,
)
from basicsr_tur.utils.dist import all_reduce_sum, sum_over_ranks
from basicsr_tur.utils.errors import CheckpointError, DataError, UserError
from basicsr_tur.utils.files import atomic_write, write_image
from basicsr_tur.utils.memory import out_of_memory_error
from basicsr_tur.utils.option_checks import BOOL, COUNT, MAPPING, PATH, POSITIVE, Kind, loss_run_arguments
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.padding import PAD_MODES, crop, input_padding
from basicsr_tur.utils.tiling import tiled_forward

# NonFiniteLossError: raised by the step (models/train_step.py)
__all__ = ['InputPaddingError', 'NonFiniteLossError', 'TURModel']


# PSNR of an image identical to its GT is +inf (basicsr's calculate_psnr returns inf for MSE 0). It is counted as
# this many dB, as pyiqa (MSE + 1e-10 on [0, 1]) and video-coding tools do, so that means and results files stay
# finite; how many images were so counted is reported beside the means ('capped'). Any other non-finite metric
# value is an error naming the image.
PSNR_CAP = 100.0

# The optimizers TURModel builds with fused=True unless optim_g says otherwise (get_optimizer says why these).
FUSED_BY_DEFAULT = ('Adam', 'AdamW')


class InputPaddingError(DataError):
    """val.pad cannot pad an input (utils/padding.py: reflection past the side minus one pixel);
    validation re-raises it naming the image and its dataset."""


@MODEL_REGISTRY.register()
class TURModel(BaseModel):
    """Trains net_g with a task-aware pixel loss and validates it task by task.

    With `pixel_opt: {type: TURLoss}` the network must have `uncertainty_head: true`; it returns
    (restored, uncertainty) in training and the loss receives each sample's task id. With any basicsr loss
    (e.g. `L1Loss`) the same model trains the plain baseline. Validation and testing use the restored output
    only (EMA weights when `ema_decay` is set).
    """

    # The option keys this model reads beside the core ones (utils/option_checks.py CORE_KEYS), checked before a
    # run starts; the sub-options dicts (optim_g, scheduler, pixel_opt, metrics, compile) against what takes them.
    OPTION_KEYS: dict[str, Kind | None] = {
        'path.pretrain_network_g': PATH.doc('weights loaded into net_g before training or testing',
                                            default=None),
        'path.param_key_g': Kind.of(str, null=True).doc(
            'the entry of the weights file read (params, params_ema, ...)', default='params'),
        'path.strict_load_g': BOOL.doc('every tensor must match (strict=True)', default=True),
        'train.optim_g': MAPPING.doc('the optimizer: a torch.optim class `type`, lr and its '
                                     'arguments (Adam and AdamW fused by default)'),
        'train.scheduler': MAPPING.doc("the learning-rate schedule: a basicsr scheduler's `type` "
                                       'and arguments'),
        'train.pixel_opt': MAPPING.doc('the pixel loss: {type: TURLoss} for TUR, {type: L1Loss} '
                                       'for the baseline, or another task weighting'),
        'train.ema_decay': Kind.of(float, minimum=0).doc(
            'keep an EMA copy of net_g (params_ema), used for validation (0: none)', default=0),
        'train.max_nonfinite_steps': POSITIVE.doc(
            'non-finite steps in a row (each skipped) that stop the run', default=5),
        'train.accumulate_steps': POSITIVE.doc('batches whose gradients make one optimizer step',
                                               default=1),
        'train.grad_clip': Kind.of(float, null=True, minimum=0).doc(
            'clip the gradient norm to this (null: no clipping)', default=None),
        'train.channels_last': BOOL.doc('channels_last memory format for net_g and the batches',
                                        default=False),
        'train.mixed_precision': Kind.of(null=True, words=('bf16', 'fp16')).doc(
            'autocast the forward pass in bf16 or fp16 (null: float32)', default=None),
        'train.compile': Kind.of(bool, dict, null=True).doc(
            'torch.compile net_g (true, or the arguments of torch.compile)', default=None),
        'val.metrics': Kind.of(dict, null=True).doc(
            'basicsr metrics by name, e.g. psnr: {type: calculate_psnr, crop_border: 0}',
            default=None),
        'val.suffix': Kind.of(str, null=True).doc("suffix of saved images' names (default: the "
                                                  "run's name)", default=None),
        'val.pbar': BOOL.doc('show a progress bar during validation', default=True),
        'val.input_row': BOOL.doc('also score the degraded input, as a row of the tables',
                                  default=True),
        'val.tile.size': POSITIVE.doc('restore tile by tile, tiles of this size (val.tile absent: '
                                      'whole images)'),
        'val.tile.overlap': COUNT.doc('pixels two neighbouring tiles share', default=32),
        'val.tile.batch': POSITIVE.doc('tiles per forward call', default=1),
        # σ of the TUR head against the error, per task (test.py's tables)
        'val.uncertainty': BOOL.doc("score the TUR head's σ against the error, per task",
                                    default=False),
        # test()'s padding of the whole input, cropped back after the forward (utils/padding.py;
        # absent: none): bottom/right to multiples of `multiple` (default 1), then with `square`
        # (default false) the shorter side on both ends to a square, by F.pad `mode` (default
        # reflect), as the test code of the row reproduced pads (MiOIR/TUR Uformer:
        # {multiple: 128, square: true}; TUR PromptIR: {multiple: 64})
        'val.pad': Kind.of(dict, null=True).doc(
            "pad each test input, cropped back after the forward (null: none)", default=None),
        'val.pad.multiple': POSITIVE.doc('pad bottom and right to multiples of this', default=1),
        'val.pad.square': BOOL.doc('then pad the shorter side on both ends to a square',
                                   default=False),
        'val.pad.mode': Kind.of(words=PAD_MODES).doc("F.pad's mode", default='reflect'),
    }

    @classmethod
    def check_option_rules(cls, opt: dict, path: str) -> None:
        """Rules between keys that each key's own check cannot see, run by the options check
        (utils/option_checks.py) once every key has its type; raises OptionError naming `path`.

        The head's switches: uncertainty_detach only means something with uncertainty_head, and
        is refused where it would do nothing (in a training; a test file may keep it)."""
        network_g = opt['network_g']
        if 'train' in opt and network_g.get('uncertainty_detach') \
                and not network_g.get('uncertainty_head'):
            raise OptionError(f"{path}: 'network_g.uncertainty_detach: true' does nothing without "
                              "'network_g.uncertainty_head: true'")

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        self.tasks = list(opt.get('tasks') or [])
        train_opt = opt.get('train') or {}
        self.channels_last = bool(train_opt.get('channels_last', False))
        # val.uncertainty: σ of the head beside each restored image, scored against the error (utils/calibration.py).
        self.uncertainty = bool((opt.get('val') or {}).get('uncertainty', False))
        # val.pad: how test() pads each input (None: not at all); a bad value fails here.
        self.input_padding = input_padding((opt.get('val') or {}).get('pad'))
        # The weights of path.pretrain_network_g: the file and the entry read (load_pretrained).
        self.loaded_weights: dict | None = None
        net = build_network(self.network_options())
        self.load_pretrained(net)  # before wrapping, so DDP broadcasts the loaded weights
        if self.channels_last:
            # 4-D weights only: Module.to(memory_format=...) also converts 5-D tensors (PromptIR's prompts), and fails.
            for tensor in itertools.chain(net.parameters(), net.buffers()):
                if tensor.dim() == 4:
                    tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        self.net_g = self.model_to_device(net)
        compile_opt = train_opt.get('compile') if self.is_train else None
        if compile_opt:
            self.net_g = torch.compile(self.net_g, **(compile_opt if isinstance(compile_opt, dict) else {}))
        self.print_network(self.net_g)
        self._output_checked = False  # the output's shape is checked against the GT once (check_output_shape)
        # val.input_row: the degraded inputs' scores (sums, capped counts) per test set, kept from the first validation
        self.input_rows: dict[str, tuple[dict, dict]] = {}
        # Draws the noise and rain seeds of degrade_on: device batches (batch_images), made on first use.
        self.synthesis_generator: torch.Generator | None = None
        if self.is_train:
            self.init_training_settings()

    def network_options(self) -> dict:
        """network_g's options; for testing with `val.uncertainty`, with `uncertainty_head: true` whatever they say.

        Raises ValueError (one line) when val.uncertainty asks σ of an arch that has no uncertainty head, or of a
        network trained here without one (training keeps the options' network: the head is part of what it trains).
        """
        net_opt = self.opt['network_g']
        if not self.uncertainty:
            return net_opt
        arch = net_opt.get('type')
        if 'uncertainty_head' not in inspect.signature(ARCH_REGISTRY.get(arch)).parameters:
            raise UserError(f"val.uncertainty: network_g.type '{arch}' has no TUR uncertainty head (no "
                             "uncertainty_head argument); use one of this project's backbones or set "
                             'val.uncertainty: false')
        if self.is_train:
            if not net_opt.get('uncertainty_head'):
                raise UserError('val.uncertainty during training reads the σ of the network being trained: set '
                                 'network_g.uncertainty_head: true (and train with TURLoss) or val.uncertainty: false')
            return net_opt
        if not net_opt.get('uncertainty_head'):
            get_root_logger().info('val.uncertainty: network_g built with uncertainty_head: true')
        return {**net_opt, 'uncertainty_head': True}

    def load_pretrained(self, net: torch.nn.Module) -> None:
        """Load `path.pretrain_network_g` into the bare network, before any device move or wrapper.

        Testing with `val.uncertainty` needs the head's trained weights: a missing path.pretrain_network_g (ValueError)
        or a checkpoint without them (KeyError, load_checkpoint's require_head) is refused in one line.
        """
        load_path = self.opt['path'].get('pretrain_network_g')
        needs_head = self.uncertainty and not self.is_train
        if needs_head and load_path is None:
            raise UserError('val.uncertainty needs path.pretrain_network_g: a checkpoint trained with TURLoss (a '
                             'fresh uncertainty head says nothing about the error)')
        if load_path is not None:
            # The entry actually read: a key the file lacks falls back (checkpoint.read_weights).
            state, entry = read_weights(load_path, self.opt['path'].get('param_key_g', 'params'))
            load_checkpoint(net, load_path, strict=self.opt['path'].get('strict_load_g', True),
                            require_head='val.uncertainty needs a checkpoint trained with TURLoss' if needs_head
                            else None, state=state)
            self.loaded_weights = {'file': load_path, 'key': entry}

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """Move net to this process's device; wrap it in DistributedDataParallel (GPU or CPU) or DataParallel."""
        net = net.to(self.device)
        if self.opt['dist']:
            return self.distributed(net, self.unreached_parameters(net))
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def distributed(self, net: torch.nn.Module, ignore: set[str]) -> DistributedDataParallel:
        """net (on its device) in DistributedDataParallel, the parameters named in `ignore` kept out of it.

        DDP waits at every step for a gradient of each parameter it holds, and fails at the next step when one never
        comes, unless it searches the autograd graph for unused parameters (`find_unused_parameters`, one more pass
        per step). Parameters a step never reaches are left out instead: not synchronised, never waited for (they
        have no gradient to synchronise); their weights and state-dict keys are untouched, so checkpoints still load
        strictly. The option `find_unused_parameters: true` still turns the search on.
        """
        for tensor in itertools.chain(net.parameters(), net.buffers()):  # an earlier wrapping's marks
            if hasattr(tensor, '_ddp_ignored'):
                del tensor._ddp_ignored
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(net, sorted(ignore))
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        return DistributedDataParallel(net, device_ids=device_ids,
                                       find_unused_parameters=bool(self.opt.get('find_unused_parameters', False)))

    def unreached_parameters(self, net: torch.nn.Module) -> set[str]:
        """Names of the trainable parameters of net that a training step never reaches (none outside training):
        modules that net(x) does not run (the backbone's `unused_parameter_prefixes`: built by the official code so
        that its checkpoints load, or serving another call) and the uncertainty head when the pixel loss does not
        read σ."""
        if not self.is_train:
            return set()
        prefixes = tuple(getattr(net, 'unused_parameter_prefixes', ()))
        if not self.loss_reads_uncertainty():
            prefixes += (HEAD_PREFIX,)
        return {name for name, param in net.named_parameters() if param.requires_grad and name.startswith(prefixes)}

    def loss_reads_uncertainty(self) -> bool:
        """Whether train.pixel_opt's loss reads the uncertainty head's σ (TURLoss), from its class alone."""
        loss_type = ((self.opt.get('train') or {}).get('pixel_opt') or {}).get('type')
        loss = LOSS_REGISTRY.get(loss_type) if loss_type in LOSS_REGISTRY else None
        return bool(getattr(loss, 'needs_uncertainty', False))

    def get_bare_model(self, net: torch.nn.Module) -> torch.nn.Module:
        """The network inside torch.compile, DataParallel and DistributedDataParallel wrappers."""
        net = getattr(net, '_orig_mod', net)
        return super().get_bare_model(net)

    def init_training_settings(self) -> None:
        """EMA copy, pixel loss, optimizer and scheduler from the `train` options."""
        self.net_g.train()
        train_opt = self.opt['train']
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                load_checkpoint(self.net_g_ema, load_path, 'params_ema', self.opt['path'].get('strict_load_g', True))
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
        if not train_opt.get('pixel_opt'):
            raise UserError("options 'train.pixel_opt' is missing (e.g. {type: TURLoss} or {type: L1Loss})")
        self.cri_pix = build_loss(self.loss_options(train_opt['pixel_opt'])).to(self.device)
        self.needs_uncertainty = getattr(self.cri_pix, 'needs_uncertainty', False)
        self.needs_task_ids = getattr(self.cri_pix, 'needs_task_ids', False)
        # Parameters of the loss itself (KendallLoss's log-variances): trained by optimizer_g, saved with the state.
        self.loss_params = [p for p in self.cri_pix.parameters() if p.requires_grad]
        if self.needs_uncertainty and getattr(self.get_bare_model(self.net_g), 'uncertainty_head', None) is None:
            raise UserError(f"train.pixel_opt.type '{train_opt['pixel_opt']['type']}' needs the uncertainty head: "
                             'set network_g.uncertainty_head: true')
        # TURModel checks the loader's task ids on the host (feed_data); the loss's own check would read the device.
        self.cri_pix.validate_task_ids = False
        # mixed_precision and accumulate_steps are checked with the options (OPTION_KEYS), once
        precision = train_opt.get('mixed_precision')
        self.amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
        accumulate_steps = int(train_opt.get('accumulate_steps', 1))
        self.setup_optimizers()
        self.setup_schedulers()
        self.train_step = TrainStep(
            self.net_g, self.optimizer_g, self.tasks, amp_dtype=self.amp_dtype, accumulate_steps=accumulate_steps,
            grad_clip=train_opt.get('grad_clip'), max_nonfinite=int(train_opt.get('max_nonfinite_steps', 5)),
            extra_params=self.loss_params, world_size=self.opt['world_size'],
            ema=(self.net_g_ema, self.ema_decay) if self.ema_decay > 0 else None)

    def loss_options(self, pixel_opt: dict) -> dict:
        """pixel_opt, with what a loss takes from the run filled in where it does not set it (options.
        loss_run_arguments: `num_tasks` from the tasks list, `seed` from manual_seed)."""
        return {**loss_run_arguments(LOSS_REGISTRY.get(pixel_opt['type']), self.opt), **pixel_opt}

    def setup_optimizers(self) -> None:
        """One optimizer over all trainable parameters of net_g (uncertainty head included) and, in a second
        parameter group without weight decay, those of the loss (a loss's weights are not to be shrunk to 0)."""
        optim_opt = dict(self.opt['train']['optim_g'])
        optim_type = optim_opt.pop('type')
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        if self.loss_params:
            params = [{'params': params}, {'params': self.loss_params, 'weight_decay': 0.0}]
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def get_optimizer(self, optim_type: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
        """Any torch.optim optimizer by class name (basicsr 1.4.2 builds only Adam; PromptIR and Uformer use AdamW).

        Adam and AdamW are fused (`fused=True`: one kernel per step for the whole parameter list, and a non-finite
        step skipped on the device, models/train_step.py) unless optim_g sets `fused` or `foreach`; `fused: false`
        gives torch's default implementation. Not by default: fused Adagrad has no CUDA kernel, and fused SGD with
        momentum whose first step is skipped keeps an uninitialised momentum buffer; they may still be asked for.
        """
        cls = getattr(torch.optim, optim_type)  # a torch.optim class: checked with the options
        if optim_type in FUSED_BY_DEFAULT and 'fused' not in kwargs and 'foreach' not in kwargs:
            kwargs['fused'] = self.device.type in ('cuda', 'cpu')
        return cls(params, lr, **kwargs)

    def model_ema(self, decay: float = 0.999) -> None:
        """net_g_ema ← decay · net_g_ema + (1 − decay) · net_g, parameters by one foreach kernel, buffers copied
        (train_step.update_ema; basicsr's version loops over the parameters and leaves the buffers)."""
        update_ema(ema_pairs(self.net_g, self.net_g_ema), decay)

    def feed_data(self, data: dict) -> None:
        """Take a batch: lq, gt (B, C, H, W), task_id (B,) and task names; copied to the device without waiting
        (non_blocking: asynchronous from the loader's pinned memory), uint8 images scaled to float32 in [0, 1] there
        (data_util.unit_tensor), and the rows of degrade_on: device samples degraded there (batch_images). In
        training, a task id outside the options' tasks list is a ValueError, checked here on the host, where the
        loader's ids are (the loss does not check them: reading device values would make the step wait)."""
        self.lq = self.batch_images(data, 'lq')
        self.gt = self.batch_images(data, 'gt') if 'gt' in data else None
        task_ids = torch.as_tensor(data['task_id'], dtype=torch.long)
        if hasattr(self, 'train_step') and task_ids.device.type == 'cpu' and task_ids.numel():
            check_task_range('TURModel', task_ids, len(self.tasks))
        self.task_ids = task_ids.to(self.device, non_blocking=True)
        self.task_names = list(data['task'])
        # The batch's files, to name the culprits of a non-finite step.
        self.batch_files = [f'{lq} (GT {gt})' if str(lq) != f'{gt}#{task}' else str(lq)
                            for lq, gt, task in zip(data.get('lq_path', []), data.get('gt_path', []), self.task_names)]

    def batch_images(self, data: dict, key: str) -> torch.Tensor:
        """Batch images `data[key]` (B, C, H, W), uint8 or float32, as float32 in [0, 1] on the device in the
        model's memory format. `lq` and `lq_key` of a batch with degrade_on: device rows (`deg_params`, see
        data/synthetic_task_dataset.py) are degraded here: device_degradations.degrade_batch, its noise and rain
        seeds drawn from a device generator seeded by the batch's per-sample seeds (`deg_seed`), so that a resumed
        run draws what an uninterrupted one does."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        images = unit_tensor(data[key].to(self.device, memory_format=memory_format, non_blocking=True))
        if key not in ('lq', 'lq_key') or 'deg_params' not in data:
            return images
        depth_key = 'deg_depth' if key == 'lq' else 'deg_depth_key'
        to_device = {k: data[k].to(self.device, non_blocking=True) for k in ('deg_kernel', depth_key) if k in data}
        seeds = [int(v) for v in torch.as_tensor(data['deg_seed']).tolist()]
        if self.synthesis_generator is None:
            self.synthesis_generator = torch.Generator(device=self.device)
        # One stream per key: lq_key draws its own noise, as the workers' second crop does.
        self.synthesis_generator.manual_seed(int(np.random.SeedSequence(seeds + [key == 'lq_key']).generate_state(
            1, np.uint64)[0]))
        degraded = degrade_batch(images, data['deg_params'].cpu(), rain_kernels=to_device.get('deg_kernel'),
                                 depth=to_device.get(depth_key), generator=self.synthesis_generator)
        return degraded.contiguous(memory_format=memory_format)

    def optimize_parameters(self, current_iter: int, step: bool = True) -> None:
        """Forward/backward one (micro-)batch; with step, update the weights (a non-finite step is skipped), without
        a host-device sync (models/train_step.py; the figures to log stay on the device until get_current_log).

        With `train.accumulate_steps: k` the pipeline calls this k times per iteration, step=True on the last:
        gradients add up (each loss divided by k) and TUR pools σ within each micro-batch. Under mixed precision
        the forward runs in autocast; TURLoss computes in float32 whatever the autocast.
        """
        context = StepContext(current_iter, self.task_names, getattr(self, 'batch_files', ()))
        self.train_step.run(lambda: self.compute_losses(current_iter), context, update=step)

    def compute_losses(self, current_iter: int) -> tuple[torch.Tensor, dict]:
        """Forward the batch; return the loss to minimise and the figures to log, on the device: `l_pix` (0-d) and
        under `tasks` the per-task figures (train_step.TaskFigures: `l1/<task>`, ...)."""
        uncertainty = None
        if self.needs_uncertainty:
            self.output, uncertainty = self.net_g(self.lq, with_uncertainty=True)
        else:
            self.output = self.net_g(self.lq)
        self.check_output_shape()
        l_pix = self.pixel_loss(uncertainty)
        return l_pix, {'l_pix': l_pix, 'tasks': self.task_figures()}

    def pixel_loss(self, uncertainty: torch.Tensor | None = None) -> torch.Tensor:
        """The pixel loss of self.output against self.gt (B, C, H, W), with what the loss takes besides: the
        uncertainty (B, C, H, W) and task ids (TURLoss), the task ids (the task-weighting losses), or nothing."""
        if self.needs_uncertainty:
            return self.cri_pix(self.output, self.gt, uncertainty, self.task_ids)
        if self.needs_task_ids:
            return self.cri_pix(self.output, self.gt, self.task_ids)
        return self.cri_pix(self.output, self.gt)

    def check_output_shape(self) -> None:
        """Once per model: the restored output (B, C, H, W) must have the GT's channels and size, else a ValueError
        (one line) names the arch, the sizes and the constructor argument to set (its own name where it has one)."""
        if self._output_checked or self.gt is None:
            return
        self._output_checked = True
        out, gt, lq = tuple(self.output.shape[1:]), tuple(self.gt.shape[1:]), tuple(self.lq.shape[1:])
        if out == gt:
            return
        arch = self.opt['network_g'].get('type', type(self.get_bare_model(self.net_g)).__name__)
        args = set(inspect.signature(type(self.get_bare_model(self.net_g))).parameters)
        if out[1:] != gt[1:]:
            scale = next((a for a in ('scale', 'upscale', 'upscale_factor', 'upsampler', 'sf') if a in args), None)
            hint = f'set network_g.{scale}' if scale else f'{arch} has no scale argument; use another arch'
            truth = '' if lq[1:] == gt[1:] else f' (ground truth {gt[1]}x{gt[2]})'
            raise UserError(f'network_g {arch} returns {out[1]}x{out[2]} for a {lq[1]}x{lq[2]} input{truth}; '
                             f'all-in-one restoration needs upscale 1 ({hint})')
        channels = next((a for a in ('num_out_ch', 'out_chans', 'out_channels', 'out_nc', 'out_channel', 'out_ch')
                         if a in args), None)
        hint = f'set network_g.{channels}: {gt[0]}' if channels else f'{arch} has no output-channel argument'
        raise UserError(f'network_g {arch} returns {out[0]} channels; the ground truth has {gt[0]} ({hint})')

    def task_figures(self) -> TaskFigures:
        """Per-task figures of the last forward over the options' tasks, on the device: L1 always; from a task-aware
        loss's stats, its per-task σ (TURLoss), weight (the task-weighting losses) and term."""
        if self.needs_uncertainty or self.needs_task_ids:
            stats = self.cri_pix.task_stats
            return TaskFigures(stats['present'], {k: stats[k] for k in ('l1', 'sigma', 'weight', 'loss')
                                                  if k in stats})
        per_sample_l1 = (self.output.detach().float() - self.gt.float()).abs().flatten(1).mean(1)
        l1, present = task_means(per_sample_l1, self.task_ids, len(self.tasks))
        return TaskFigures(present, {'l1': l1})

    def resume_training(self, resume_state: dict) -> None:
        """Optimizer and scheduler states, the loss's own state (when the saved run used the same loss), the RNGs and
        the non-finite streak of the saved run.

        The options' optimizer settings and scheduler apply from here on: a changed lr scales the saved schedule
        (its initial and current lr) by new/old, other optimizer settings (betas, weight_decay ...) replace the
        saved ones, and the scheduler is rebuilt from the options at the saved position (basicsr's load_state_dict
        would bring back the saved milestones or periods). The pipeline has refused a change of optimizer type
        (train.check_resumed_options). Raises ValueError when the state holds another number of optimizers, another
        number of parameter groups (a switch between a pixel loss with learned parameters and one without), or an
        optimizer state over other parameters.
        """
        where = resume_state.get('path', 'the training state')
        saved_optimizers, saved_schedulers = resume_state['optimizers'], resume_state['schedulers']
        if len(saved_optimizers) != len(self.optimizers) or len(saved_schedulers) != len(self.schedulers):
            raise CheckpointError(f'{where}: holds {len(saved_optimizers)} optimizers and {len(saved_schedulers)} '
                             f'schedulers; this model has {len(self.optimizers)} and {len(self.schedulers)}')
        for optimizer, saved in zip(self.optimizers, saved_optimizers):
            wanted = [{k: v for k, v in group.items() if k != 'params'} for group in optimizer.param_groups]
            if len(saved['param_groups']) != len(optimizer.param_groups):  # the loss's learned parameters: a group
                saved_type = (resume_state.get('loss_state') or {}).get('type', 'a loss without learned parameters')
                raise CheckpointError(f"{where}: was trained with {saved_type} ({len(saved['param_groups'])} optimizer "
                                 f'parameter groups); train.pixel_opt {type(self.cri_pix).__name__} needs '
                                 f'{len(optimizer.param_groups)} (a loss with learned parameters, as KendallLoss\'s '
                                 'log-variances, adds one): keep the loss, or start a new run from its weights '
                                 '(path.pretrain_network_g)')
            try:
                optimizer.load_state_dict(saved)
            except ValueError as err:  # another set of trainable parameters (e.g. AirNet's train.fix_encoder)
                raise CheckpointError(f'{where}: its optimizer state does not fit the trainable parameters of this '
                                 f'network: {str(err).splitlines()[0]}') from None
            for group, settings in zip(optimizer.param_groups, wanted):
                ratio = settings['initial_lr'] / group['initial_lr']
                group.update({k: v for k, v in settings.items() if k not in ('lr', 'initial_lr')})
                group['initial_lr'], group['lr'] = settings['initial_lr'], group['lr'] * ratio
        for scheduler, saved in zip(self.schedulers, saved_schedulers):
            fresh = scheduler.state_dict()
            ratio = [o['initial_lr'] / b for o, b in zip(scheduler.optimizer.param_groups, saved['base_lrs'])]
            position = {k: saved[k] for k in ('last_epoch', '_step_count', '_is_initial') if k in saved}
            position['base_lrs'] = [g['initial_lr'] for g in scheduler.optimizer.param_groups]
            if '_last_lr' in saved:
                position['_last_lr'] = [lr * r for lr, r in zip(saved['_last_lr'], ratio)]
            scheduler.load_state_dict({**fresh, **position})
        saved_loss = resume_state.get('loss_state')
        if saved_loss is not None and saved_loss['type'] == type(self.cri_pix).__name__:
            try:
                self.cri_pix.load_state_dict(saved_loss['state'])
            except RuntimeError as err:
                raise CheckpointError(f'{where}: its {saved_loss["type"]} state does not fit this loss: '
                                 f'{str(err).splitlines()[-1].strip()}') from None
        if 'rng' in resume_state:
            restore_rng_state(resume_state['rng'])
        self.train_step.set_streak(resume_state.get('nonfinite_in_a_row', 0))

    def get_current_log(self) -> OrderedDict:
        """Mean of each logged figure since the previous call (per-task figures averaged over the batches), read from
        the device in one transfer; warns of the steps skipped since, and raises NonFiniteLossError when
        train.max_nonfinite_steps of them came in a row (so a run stops at most print_freq - 1 iterations after)."""
        return self.train_step.read_log()

    @property
    def skipped_steps(self) -> int:
        """Non-finite steps skipped by this process (logged at the end of training; a read of the device)."""
        return self.train_step.skipped_steps if hasattr(self, 'train_step') else 0

    def test(self) -> None:
        """Restore self.lq into self.output with the EMA weights if any; with `val.uncertainty`, also the head's σ
        (N, C, H, W, positive) into self.sigma, from the same forward pass (self.output is the same either way).

        With `val.tile: {size, overlap, batch}` the image is restored tile by tile and blended (utils/tiling.py), in
        memory bounded by the tile size whatever the image size, `batch` tiles per forward call (default 1); tiles
        are rounded up to the backbone's size_multiple. σ is blended with the same windows. Runs under
        torch.inference_mode and, during training, the training's autocast (train.mixed_precision); self.output and
        self.sigma are float32.

        With `val.pad` (utils/padding.py) the input is padded first, as the test code of the row
        it reproduces does, the padded image is restored (whole or tiled) and self.output and
        self.sigma are cropped back to the input's size. Without it the network gets self.lq itself.
        """
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        tile = (self.opt.get('val') or {}).get('tile')
        forward = (lambda x: net(x, with_uncertainty=True)) if self.uncertainty else net
        padding = self.input_padding
        try:
            lq, (top, left) = padding.pad(self.lq) if padding else (self.lq, (0, 0))
        except ValueError as err:
            raise InputPaddingError(str(err)) from None
        # The training's autocast (train.mixed_precision; test.py's runs have none and stay float32).
        amp_dtype = getattr(self, 'amp_dtype', None)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=amp_dtype or torch.float32,
                                                    enabled=amp_dtype is not None):
            if tile:
                result = tiled_forward(forward, lq, tile['size'], tile.get('overlap', 32),
                                       multiple=getattr(self.get_bare_model(net), 'size_multiple', 1),
                                       batch=tile.get('batch', 1))
            else:
                result = forward(lq)
        net.train(was_training)
        results = tuple(result) if self.uncertainty else (result,)
        if lq is not self.lq:
            results = tuple(crop(t, top, left, *self.lq.shape[-2:]) for t in results)
        # Metrics, σ and saved images read float32, whatever the autocast computed in.
        if self.uncertainty:
            self.output, self.sigma = (t.float() for t in results)
        else:
            self.output = results[0].float()

    def get_current_visuals(self) -> OrderedDict:
        """lq, result and gt of the current batch, on the CPU."""
        out = OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().cpu())
        if self.gt is not None:
            out['gt'] = self.gt.detach().cpu()
        return out

    def validation(self, dataloader, current_iter, tb_logger, save_img: bool = False) -> dict:
        """Per-task validation (see nondist_validation); in distributed runs each rank loads and scores its share of
        the images (the loader's ShardSampler, data.loaders.build_loader) and the sums are gathered. A ValueError if
        several ranks are given a loader without a ShardSampler of their rank (each image would count once per rank).

        Every global RNG (python, numpy, torch, CUDA) is put back as it was: a loader, a dataset or a metric that
        draws from them must not shift the training that follows, or a resumed run (which restores the RNGs saved
        before this validation) would train on other random numbers than an uninterrupted one.
        """
        rng = capture_rng_state()
        try:
            return self.nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            restore_rng_state(rng)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img: bool) -> dict:
        """Per-task metrics of the restored images (and of the degraded inputs, scored at the first validation of
        each test set only and reused: `val.input_row`); returns them as a dict.

        Returns {'tasks': {task: {metric: mean}}, 'average': {metric: mean over tasks}, 'counts': {task: n},
        'input': same layout for the degraded input, 'capped': {source: {task: {metric: n}}} the images whose infinite
        PSNR (identical to GT) was counted as PSNR_CAP, none listed when there is none} and logs them (tensorboard:
        metrics/<dataset>/<task>/<m>). A NaN or other non-finite metric value raises a ValueError naming the image.
        Each metric scores the images its function declares (metrics/__init__.py image_kind):
        basicsr's the 8-bit images (tensor2img), 'float' ones (calculate_psnr_skimage, ...) the
        output, GT and input clipped to [0, 1] as float64 (unit_image: made once per image, only
        when such a metric is configured).
        With `val.uncertainty: true`, also 'uncertainty': {task: {'mean_sigma', 'spearman', 'deciles', 'decile_error',
        'pixels'}} over the images with a GT (utils/calibration.py says what each is; pooled over the task's sampled
        pixels, gathered from every rank in distributed runs), logged too (tensorboard: uncertainty/<dataset>/<task>/
        mean_sigma and spearman).
        """
        dataset_name = dataloader.dataset.opt['name']
        val_opt = self.opt.get('val') or {}
        metric_opts = val_opt.get('metrics') or {}
        # The images each metric scores: '8-bit' (tensor2img) or 'float' (clipped to [0, 1]).
        kinds = {name: image_kind(m_opt['type']) for name, m_opt in metric_opts.items()}
        with_input = val_opt.get('input_row', True)
        # The degraded inputs do not change between validations: their scores (this rank's sums and capped counts)
        # are computed at the first validation of each test set and reused at the later ones.
        score_input = with_input and dataset_name not in self.input_rows
        sums = {'model': defaultdict(lambda: defaultdict(float)), 'input': defaultdict(lambda: defaultdict(float))}
        counts: dict[str, int] = defaultdict(int)
        capped = {'model': defaultdict(lambda: defaultdict(int)), 'input': defaultdict(lambda: defaultdict(int))}
        self.examples = {}  # first (input, restored, gt) of each task, 8-bit BGR, for comparison figures
        pbar = tqdm(total=len(dataloader), unit='image', desc=f'Test {dataset_name}', leave=False) \
            if val_opt.get('pbar', True) and self.opt['rank'] == 0 else None
        # val.uncertainty: per image index, (task, mean σ, sampled σ pixels, their |error|) (utils/calibration.py)
        uncertainty_rows: dict[int, tuple[str, float, np.ndarray, np.ndarray]] = {}
        seed = self.opt.get('manual_seed') or 0
        world_size = self.opt['world_size']
        sampler = dataloader.sampler
        if world_size > 1 and not (isinstance(sampler, ShardSampler)
                                   and (sampler.num_replicas, sampler.rank) == (world_size, self.opt['rank'])):
            raise UserError(f"dataset '{dataset_name}': validation on {world_size} ranks needs a loader giving each "
                             f'rank its share of the images (data.loaders.build_loader), not one with a '
                             f'{type(sampler).__name__}')
        # The indices are read from the sampler beside the loader's batches: only an in-order sampler (iterated
        # twice, the same order both times) of batches of one image keeps an index with its image.
        if not isinstance(sampler, (ShardSampler, SequentialSampler)) or dataloader.batch_size != 1:
            raise UserError(f"dataset '{dataset_name}': validation needs a loader of single images in order "
                             f'(data.loaders.build_loader), not batches of {dataloader.batch_size} from a '
                             f'{type(sampler).__name__}')
        # Batches of one image: the sampler's indices are the dataset indices of this rank's images, in order.
        for index, val_data in zip(sampler, dataloader):
            self.feed_data(val_data)
            try:
                self.test()
            except RuntimeError as err:
                oom = out_of_memory_error(err, f"dataset '{dataset_name}'", str(val_data['lq_path'][0]), self.lq)
                if oom is None:
                    raise
                raise oom from None
            except InputPaddingError as err:  # one line naming the image among the set's
                image = val_data['lq_path'][0]
                raise InputPaddingError(f"dataset '{dataset_name}': {image}: {err}") from None
            self.check_output_shape()
            task = self.task_names[0]
            counts[task] += 1
            result_img = tensor2img([self.output.detach().cpu()])
            gt_img = tensor2img([self.gt.detach().cpu()]) if self.gt is not None else None
            if save_img:
                self._save_image(result_img, val_data, dataset_name, task, current_iter)
            example = task not in self.examples and gt_img is not None
            lq_img = tensor2img([self.lq.detach().cpu()]) if example or (score_input and gt_img is not None) else None
            if example:
                self.examples[task] = (lq_img, result_img, gt_img)
            if self.uncertainty and self.gt is not None:
                uncertainty_rows[index] = (task, float(self.sigma.float().mean()), *sample_pixels(
                    self.sigma, pixel_error(self.output, self.gt), seed, index))
            if gt_img is not None:
                # Per image kind (metrics/__init__.py): {source: (image, its GT)}, each made once.
                pairs = {'8-bit': {'model': (result_img, gt_img)}}
                if score_input:
                    pairs['8-bit']['input'] = (lq_img, gt_img)
                if 'float' in kinds.values():
                    gt_unit = unit_image(self.gt)
                    pairs['float'] = {'model': (unit_image(self.output), gt_unit)}
                    if score_input:
                        pairs['float']['input'] = (unit_image(self.lq), gt_unit)
                for source in pairs['8-bit']:
                    for name, m_opt in metric_opts.items():
                        img, img2 = pairs[kinds[name]][source]
                        self._check_window(name, m_opt, source, val_data)
                        value = float(calculate_metric({'img': img, 'img2': img2}, m_opt))
                        if not math.isfinite(value):
                            value = self._capped_metric(name, m_opt, value, source, val_data)
                            capped[source][task][name] += 1
                        sums[source][task][name] += value
            if pbar is not None:
                pbar.update(1)
        if pbar is not None:
            pbar.close()
        if score_input:
            self.input_rows[dataset_name] = ({t: dict(v) for t, v in sums['input'].items()},
                                             {t: dict(v) for t, v in capped['input'].items()})
        elif with_input:
            cached_sums, cached_capped = self.input_rows[dataset_name]
            sums['input'] = defaultdict(lambda: defaultdict(float),
                                        {t: defaultdict(float, v) for t, v in cached_sums.items()})
            capped['input'] = defaultdict(lambda: defaultdict(int),
                                          {t: defaultdict(int, v) for t, v in cached_capped.items()})
        if world_size > 1:
            counts, sums, capped = self._gather_sums(counts, sums, capped, list(metric_opts))
            if self.uncertainty:
                uncertainty_rows = self._gather_uncertainty_rows(uncertainty_rows, len(dataloader.dataset))
        results = {'counts': dict(counts)}
        for source in ('model', 'input') if with_input else ('model',):
            per_task = {t: {m: sums[source][t][m] / counts[t] for m in metric_opts} for t in self._ordered(counts)}
            average = {m: sum(per_task[t][m] for t in per_task) / len(per_task) for m in metric_opts} \
                if per_task else {}
            results[source] = {'tasks': per_task, 'average': average}
        results['capped'] = {}
        for source in ('model', 'input') if with_input else ('model',):
            per_task = {t: {m: n for m, n in capped[source][t].items() if n} for t in self._ordered(counts)}
            if any(per_task.values()):
                results['capped'][source] = {t: v for t, v in per_task.items() if v}
        if self.uncertainty:
            results['uncertainty'] = self._uncertainty_results(uncertainty_rows)
        self._log_validation(results, dataset_name, current_iter, tb_logger)
        return results

    def _uncertainty_results(self, rows: dict[int, tuple[str, float, np.ndarray, np.ndarray]]) -> dict:
        """{task: utils.calibration.uncertainty_figures} of the rows (image index -> task, mean σ, sampled σ and
        |error|), tasks in the options' order, each task's pixels pooled in image order."""
        per_task: dict[str, list] = defaultdict(list)
        for index in sorted(rows):
            per_task[rows[index][0]].append(rows[index][1:])
        return {task: uncertainty_figures(*(list(column) for column in zip(*per_task[task])))
                for task in self._ordered(per_task)}

    def _gather_uncertainty_rows(self, rows: dict[int, tuple[str, float, np.ndarray, np.ndarray]],
                                 num_images: int) -> dict[int, tuple[str, float, np.ndarray, np.ndarray]]:
        """Every rank's rows on every rank: one (num_images, 3 + 2 * SAMPLE_PER_IMAGE) table, each image's row
        (task id + 1, mean σ, pixel count, σ pixels, |error| pixels, zero-padded) filled by the rank that scored it
        and the tables summed over the ranks (each row is non-zero on one rank only). Tasks outside the options'
        task list are left out, as _gather_sums does."""
        k = SAMPLE_PER_IMAGE
        table = torch.zeros(num_images, 3 + 2 * k, dtype=torch.float32, device=self.device)
        for index, (task, mean_sigma, sigma_px, error_px) in rows.items():
            if task in self.tasks:
                n = sigma_px.size
                table[index, :3] = torch.tensor([self.tasks.index(task) + 1, mean_sigma, n])
                table[index, 3:3 + n] = torch.from_numpy(sigma_px)
                table[index, 3 + k:3 + k + n] = torch.from_numpy(error_px)
        table = sum_over_ranks(table).cpu().numpy()
        gathered = {}
        for index in range(num_images):
            task_id, mean_sigma, n = int(table[index, 0]), float(table[index, 1]), int(table[index, 2])
            if task_id > 0:
                gathered[index] = (self.tasks[task_id - 1], mean_sigma, table[index, 3:3 + n].copy(),
                                   table[index, 3 + k:3 + k + n].copy())
        return gathered

    def _gather_sums(self, counts: dict, sums: dict, capped: dict, metrics: list[str]) -> tuple[dict, dict, dict]:
        """Add up every rank's per-task counts, metric sums and capped counts (keys in the options' task order)."""
        pairs = [(t, s, m) for t in self.tasks for s in ('model', 'input') for m in metrics]
        keys = [(t, None, None) for t in self.tasks] + pairs
        local = [float(counts.get(t, 0)) if s is None else sums[s][t][m] for t, s, m in keys]
        local += [float(capped[s][t][m]) for t, s, m in pairs]
        total = all_reduce_sum(local)
        counts = {t: int(v) for (t, s, _), v in zip(keys, total) if s is None and v > 0}
        for (t, s, m), v in zip(keys, total):
            if s is not None:
                sums[s][t][m] = v
        for (t, s, m), v in zip(pairs, total[len(keys):]):
            capped[s][t][m] = int(v)
        return counts, sums, capped

    @staticmethod
    def _capped_metric(name: str, m_opt: dict, value: float, source: str, val_data: dict) -> float:
        """PSNR_CAP for the +inf PSNR of an image identical to its GT; any other non-finite value raises naming
        the image (a NaN metric means broken data or a broken metric, never something to average)."""
        metric_type = str(m_opt.get('type', ''))
        if value == math.inf and 'psnr' in metric_type.lower():
            return PSNR_CAP
        why = TURModel._window_note(m_opt, val_data)
        raise TURModel._metric_error(name, m_opt, source, val_data,
                                     f'is {value}; expected a finite value{why}')

    @staticmethod
    def _check_window(name: str, m_opt: dict, source: str, val_data: dict) -> None:
        """A ValueError naming the image when the metric's window (SSIM: 11 for basicsr's, 7 for
        skimage's; metrics.metric_window) does not fit the image once crop_border is cropped."""
        why = TURModel._window_note(m_opt, val_data)
        if why:
            raise TURModel._metric_error(name, m_opt, source, val_data, f'cannot be computed{why}')

    @staticmethod
    def _window_note(m_opt: dict, val_data: dict) -> str:
        """' (SSIM's 7x7 window does not fit a 5x5 image with crop_border 0)', '' if it fits."""
        window = metric_window(str(m_opt.get('type', '')))
        h, w = val_data['gt'].shape[-2:] if 'gt' in val_data else (0, 0)
        border = int(m_opt.get('crop_border', 0))
        if window is None or min(h, w) - 2 * border >= window:
            return ''
        return (f" (SSIM's {window}x{window} window does not fit a {h}x{w} image with crop_border "
                f'{border})')

    @staticmethod
    def _metric_error(name: str, m_opt: dict, source: str, val_data: dict, what: str) -> DataError:
        """The DataError of a metric that cannot be scored, naming the image and its GT."""
        image = 'restored' if source == 'model' else 'input'
        lq, gt = val_data.get('lq_path', ['?'])[0], val_data.get('gt_path', ['?'])[0]
        return DataError(f"metric '{name}' ({m_opt.get('type', '')}) of the {image} image of {lq} "
                         f'(GT {gt}) {what}')

    def _ordered(self, counts: dict) -> list[str]:
        """Tasks seen, in the options' task order (unknown ones after)."""
        known = [t for t in self.tasks if t in counts]
        return known + sorted(t for t in counts if t not in self.tasks)

    def _save_image(self, img, val_data: dict, dataset_name: str, task: str, current_iter) -> None:
        """Save to <visualization>/<dataset>/<task>/<name>_<iter or suffix>.png, name the dataset's `out_name` (unique
        within its task, so no two inputs write one file), or else the input's stem."""
        name = val_data['out_name'][0] if 'out_name' in val_data else \
            osp.splitext(osp.basename(str(val_data['lq_path'][0])))[0]
        if self.opt['is_train']:
            path = osp.join(self.opt['path']['visualization'], dataset_name, task, f'{name}_{current_iter}.png')
        else:
            suffix = (self.opt.get('val') or {}).get('suffix') or self.opt['name']
            path = osp.join(self.opt['path']['visualization'], dataset_name, task, f'{name}_{suffix}.png')
        write_image(path, img)

    def _log_validation(self, results: dict, dataset_name: str, current_iter, tb_logger) -> None:
        model = results['model']
        lines = [f'Validation {dataset_name} (iter {current_iter})']
        for task, values in list(model['tasks'].items()) + [('average', model['average'])]:
            figures = ', '.join(f'{m}: {v:.4f}' for m, v in values.items())
            lines.append(f'\t{task:>10s}  {figures}')
        for task, values in (results.get('uncertainty') or {}).items():
            rho = 'undefined' if values['spearman'] is None else f"{values['spearman']:.4f}"
            lines.append(f"\t{task:>10s}  mean σ: {values['mean_sigma']:.4f}, Spearman(σ, |error|): {rho} "
                         f"({values['pixels']} pixels)")
        get_root_logger().info('\n'.join(lines))
        if tb_logger and isinstance(current_iter, int):
            for task, values in (results.get('uncertainty') or {}).items():
                for key in ('mean_sigma', 'spearman'):
                    if values[key] is not None:
                        tb_logger.add_scalar(f'uncertainty/{dataset_name}/{task}/{key}', values[key], current_iter)
        if tb_logger and isinstance(current_iter, int):
            for task, values in list(model['tasks'].items()) + [('average', model['average'])]:
                for metric, value in values.items():
                    if math.isfinite(value):
                        tb_logger.add_scalar(f'metrics/{dataset_name}/{task}/{metric}', value, current_iter)

    def save(self, epoch: int, current_iter: int, samples_in_epoch: int = 0, **record) -> None:
        """Save net_g (params, and params_ema with EMA), then the training state, each atomically.

        Weights first: a run killed between the two resumes from the previous state, whose weights are intact.
        """
        self.save_weights(current_iter)
        self.save_training_state(epoch, current_iter, samples_in_epoch, **record)

    def save_weights(self, label: int | str) -> None:
        """Write models/net_g_<label>.pth with `params` (and `params_ema` when EMA is on)."""
        if self.opt['rank'] != 0:
            return
        nets = {'params': self.get_bare_model(self.net_g)}
        if hasattr(self, 'net_g_ema'):
            nets['params_ema'] = self.net_g_ema
        weights = {k: {n: t.detach().cpu() for n, t in net.state_dict().items()} for k, net in nets.items()}
        atomic_write(osp.join(self.opt['path']['models'], f'net_g_{label}.pth'), lambda f: torch.save(weights, f),
                     what='save')

    def save_training_state(self, epoch: int, current_iter: int, samples_in_epoch: int = 0, **record) -> None:
        """Optimizers, schedulers, epoch, iteration, position in the epoch and every RNG, written atomically.

        samples_in_epoch: samples of the epoch's global order used so far (all ranks). record: what the pipeline
        keeps with the state (`run`: the options a resume checks, `validate`: a validation follows this save).
        """
        if self.opt['rank'] != 0:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'samples_in_epoch': samples_in_epoch,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'rng': capture_rng_state(),
                 'nonfinite_in_a_row': self.train_step.streak_value(), **record}
        loss_state = self.cri_pix.state_dict()
        if loss_state:  # a loss with parameters or buffers (KendallLoss, RLWLoss, DWALoss, FAMOLoss)
            state['loss_state'] = {'type': type(self.cri_pix).__name__,
                                   'state': {k: v.detach().cpu() for k, v in loss_state.items()}}
        atomic_write(osp.join(self.opt['path']['training_states'], f'{current_iter}.state'),
                     lambda f: torch.save(state, f), what='save')
