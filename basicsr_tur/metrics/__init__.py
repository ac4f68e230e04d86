"""Import every `*_metric.py` of this folder so that its functions register into basicsr's
METRIC_REGISTRY, beside basicsr's own calculate_psnr/calculate_ssim; and say, for any registered
metric, which images it scores and how large its window is.

A metric function declares the images it reads in an attribute `image_kind`: '8-bit' (basicsr's
metrics, which carry no attribute: validation gives them tensor2img's 8-bit BGR images) or 'float'
(validation gives them the output and the GT as float64 (H, W, C) RGB arrays clipped to [0, 1]:
`unit_image`). A metric with a sliding window (SSIM) declares its side in `window`.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

# What each image kind is, as results record it (test.py measurement_protocol, metrics.md).
IMAGE_KINDS = {'8-bit': '8-bit', 'float': 'float clipped to [0, 1]'}
# The windows of basicsr's metrics, which declare none: calculate_ssim's 11x11 Gaussian
# (basicsr/metrics/psnr_ssim.py _ssim, cv2.getGaussianKernel(11, 1.5)). Its torch twin
# calculate_ssim_pt scores tensors, not the numpy images validation gives: the options check
# refuses it (utils/option_checks.py TENSOR_METRICS).
BASICSR_WINDOWS = {'calculate_ssim': 11}


def image_kind(metric_type: str) -> str:
    """'8-bit' or 'float': the images the registered metric `metric_type` scores (IMAGE_KINDS)."""
    return getattr(METRIC_REGISTRY.get(metric_type), 'image_kind', '8-bit')


def metric_window(metric_type: str) -> int | None:
    """The side of the registered metric's sliding window (SSIM: 7 or 11), None for a metric without
    one (PSNR): an image must be at least this large, on both sides, after `crop_border`."""
    return getattr(METRIC_REGISTRY.get(metric_type), 'window', BASICSR_WINDOWS.get(metric_type))


def unit_image(tensor: torch.Tensor) -> np.ndarray:
    """A (1, C, H, W) or (C, H, W) float image tensor (nominally [0, 1], RGB) as the (H, W, C)
    float64 array a 'float' metric scores, clipped to [0, 1].

    As AirNet's and PromptIR's test code does (utils/val_utils.py compute_psnr_ssim: np.clip(x, 0,
    1) of the float output and of the float GT, then NCHW -> NHWC); widened to float64 after the
    clip, so the values are those of the float32 tensor. NaN stays NaN (its metric is NaN, an
    error).
    """
    image = tensor.detach()
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(f'unit_image takes one float image, (1, C, H, W) or (C, H, W), got a '
                         f'{image.dtype} tensor of shape {tuple(image.shape)}')
    return image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float64)


for _file in sorted(Path(__file__).parent.glob('*_metric.py')):
    importlib.import_module(f'{__name__}.{_file.stem}')
