"""PSNR and SSIM as AirNet's and PromptIR's test code scores them: scikit-image on float images.

Source: XLearning-SCU/2022-CVPR-AirNet and va1shn9v/PromptIR, utils/val_utils.py
compute_psnr_ssim. Both clip the float network output and the float GT (ToTensor of the 8-bit image:
k/255) to [0, 1], move them to (H, W, C) and call, per image,
`peak_signal_noise_ratio(clean, restored, data_range=1)` and
`structural_similarity(clean, restored, data_range=1, multichannel=True)` (skimage's defaults: a 7x7
uniform window, sample covariance, K1 0.01, K2 0.03, the mean over the interior 3 pixels away from
the border, averaged over channels), then average over the images.

basicsr's calculate_psnr/calculate_ssim instead score the 8-bit images (tensor2img) with an 11x11
Gaussian SSIM window. These functions are registered under their own names
(`val.metrics: {psnr: {type: calculate_psnr_skimage}, ssim: {type: calculate_ssim_skimage}}`) and
declare `image_kind = 'float'`, so validation gives them the clipped float images
(metrics/__init__.py unit_image). They take RGB only and no border other than `crop_border`:
options they do not take (test_y_channel, input_order) are refused when the options are read.

They compute in float64 whatever float type they are given. The authors' environments differ there:
AirNet's (scikit-image 0.18.2) converted to float64, PromptIR's (0.19.3) keeps float32 inputs in
float32: measured on 512x512 photos with Gaussian noise, SSIM moves by up to 5e-7, PSNR by 5e-8 dB.
"""
from __future__ import annotations

import numpy as np
from basicsr.utils.registry import METRIC_REGISTRY

from basicsr_tur.utils.errors import UserError

SSIM_WINDOW = 7  # skimage's default win_size with uniform weights


def _unit_pair(img: np.ndarray, img2: np.ndarray, crop_border: int,
               metric: str) -> tuple[np.ndarray, np.ndarray]:
    """img and img2 checked ((H, W) or (H, W, C) floats in [0, 1], of one shape), cropped by
    crop_border on each side, as float64."""
    if img.shape != img2.shape:
        raise ValueError(f'{metric}: images of different shapes {img.shape} and {img2.shape}')
    if img.ndim not in (2, 3):
        raise ValueError(f'{metric}: expected an (H, W) or (H, W, C) image, got shape {img.shape}')
    for array in (img, img2):
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f'{metric}: expected float images in [0, 1], got {array.dtype} '
                             "(8-bit images are scored by basicsr's calculate_psnr/calculate_ssim)")
        # NaN passes (its metric is NaN, which validation reports naming the image)
        low, high = (float(np.nanmin(array)), float(np.nanmax(array))) if array.size else (0, 1)
        if low < 0 or high > 1:
            raise ValueError(f'{metric}: values outside [0, 1] (min {low:g}, max {high:g}); clip '
                             'them first, as the authors did')
    if crop_border < 0:
        raise UserError(f'{metric}: crop_border must be >= 0, got {crop_border}')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    return img.astype(np.float64), img2.astype(np.float64)


@METRIC_REGISTRY.register()
def calculate_psnr_skimage(img: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """PSNR in dB of two float images in [0, 1], (H, W, C) RGB or (H, W), float32 or float64:
    skimage's peak_signal_noise_ratio(img2, img, data_range=1) after cropping `crop_border` pixels
    from each side; +inf for identical images (validation counts it as PSNR_CAP).

    img is the restored (or degraded) image, img2 the GT, as in basicsr's calculate_psnr. Source:
    AirNet/PromptIR utils/val_utils.py compute_psnr_ssim.
    """
    restored, clean = _unit_pair(img, img2, crop_border, 'calculate_psnr_skimage')
    with np.errstate(divide='ignore'):  # MSE 0: +inf, reported as such
        from skimage.metrics import peak_signal_noise_ratio  # scikit-image loads when a run scores with it
        return float(peak_signal_noise_ratio(clean, restored, data_range=1))


@METRIC_REGISTRY.register()
def calculate_ssim_skimage(img: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """SSIM in [-1, 1] of two float images in [0, 1], (H, W, C) RGB or (H, W), float32 or float64:
    skimage's structural_similarity(img2, img, data_range=1) per channel (7x7 uniform window, sample
    covariance, K1 0.01, K2 0.03, mean over the pixels 3 or more from the border) averaged over the
    channels, after cropping `crop_border` pixels from each side.

    img is the restored (or degraded) image, img2 the GT. Both sides must be at least 7 pixels after
    the crop (a ValueError otherwise). Source: AirNet/PromptIR utils/val_utils.py compute_psnr_ssim
    (`multichannel=True`, which scikit-image >= 0.19 spells channel_axis=-1).
    """
    restored, clean = _unit_pair(img, img2, crop_border, 'calculate_ssim_skimage')
    h, w = clean.shape[:2]
    if min(h, w) < SSIM_WINDOW:
        raise UserError(f"calculate_ssim_skimage: SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window does "
                         f'not fit a {h}x{w} image (after crop_border {crop_border})')
    from skimage.metrics import structural_similarity  # scikit-image loads when a run scores with it
    return float(structural_similarity(
        clean, restored, win_size=SSIM_WINDOW, gaussian_weights=False, use_sample_covariance=True,
        K1=0.01, K2=0.03, data_range=1, channel_axis=-1 if clean.ndim == 3 else None))


# The images validation gives them, and the size they need (metrics/__init__.py image_kind and
# metric_window).
calculate_psnr_skimage.image_kind = 'float'  # type: ignore[attr-defined]
calculate_ssim_skimage.image_kind = 'float'  # type: ignore[attr-defined]
calculate_ssim_skimage.window = SSIM_WINDOW  # type: ignore[attr-defined]
