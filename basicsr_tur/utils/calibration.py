"""Does the uncertainty head know where the model is wrong? Per-task figures of σ against the per-pixel error.

test.py with `val.uncertainty: true` reports, per task of a test set (TURModel.nondist_validation collects, this
module computes):

- mean σ: the mean of σ over the pixels and channels of each image, averaged over the task's images;
- Spearman(σ, |err|): the rank correlation between σ (per pixel, averaged over the channels) and the absolute error
  |restored − gt| (per pixel, averaged over the channels; restored is the float output clamped to [0, 1], gt the
  float ground truth), POOLED over the task's pixels. Pooled rather than averaged per image because the question is
  whether σ ranks the pixels of a task by their error whatever image they come from: a head that only ranks pixels
  within each image, but gives an easy image the same σ as a hard one, is not calibrated, and a per-image average
  would not see it. The calibration figure pools the same pixels, so the number and the figure describe one sample;
- calibration: the pooled pixels sorted by σ and cut into ten equal-count groups (σ deciles), each group's mean σ
  against its mean |error|.

Sampling. Each image contributes at most SAMPLE_PER_IMAGE pixels (all of them when it has fewer), drawn without
replacement by numpy's generator seeded with (manual_seed, index of the image in the test set): the same pixels
whatever the number of processes, every image weighing the same in the pooled figures whatever its size (as in the
per-image means of PSNR), and the cost of the rank correlation bounded (4096 pixels per image: a 100-image task pools
409,600 pixel pairs; the standard error of a Spearman coefficient on n pairs is below 1/sqrt(n - 3)).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

SAMPLE_PER_IMAGE = 4096
DECILES = 10


def pixel_error(restored: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel absolute error (H, W) of a restored image (1, C, H, W), clamped to [0, 1], against its gt (1, C, H, W),
    averaged over the channels."""
    return (restored.float().clamp(0, 1) - gt.float()).abs().mean(dim=1)[0]


def sample_pixels(sigma: torch.Tensor, error: torch.Tensor, seed: int, index: int,
                  count: int = SAMPLE_PER_IMAGE) -> tuple[np.ndarray, np.ndarray]:
    """The same `count` pixels (all when fewer) of σ (1, C, H, W, averaged over C) and error (H, W), as two float32
    arrays; the pixels drawn without replacement by numpy's generator seeded with (seed, index)."""
    sigma_px = sigma.float().mean(dim=1)[0].flatten().cpu().numpy()
    error_px = error.float().flatten().cpu().numpy()
    if sigma_px.shape != error_px.shape:
        raise ValueError(f'σ has {sigma_px.size} pixels and the error map {error_px.size}; expected the same size')
    if sigma_px.size > count:
        chosen = np.sort(np.random.default_rng([seed, index]).choice(sigma_px.size, count, replace=False))
        sigma_px, error_px = sigma_px[chosen], error_px[chosen]
    return sigma_px, error_px


def spearman(sigma: np.ndarray, error: np.ndarray) -> float | None:
    """Spearman rank correlation of two 1-D arrays (scipy.stats.spearmanr, ties given their mean rank), in [-1, 1];
    None when it is undefined (fewer than two pixels, or one array constant: no ranking to compare)."""
    if sigma.size < 2 or np.ptp(sigma) == 0 or np.ptp(error) == 0:
        return None
    return float(spearmanr(sigma, error)[0])


def calibration(sigma: np.ndarray, error: np.ndarray, groups: int = DECILES) -> tuple[list[float], list[float]]:
    """(mean σ, mean error) of each of `groups` equal-count groups of the pixels sorted by σ (the σ deciles, lowest
    first; fewer groups when there are fewer pixels). Ties in σ keep the pixels' order (a stable sort)."""
    order = np.argsort(sigma, kind='stable')
    parts = np.array_split(order, min(groups, sigma.size))
    return ([float(sigma[p].astype(np.float64).mean()) for p in parts],
            [float(error[p].astype(np.float64).mean()) for p in parts])


def uncertainty_figures(sigma_means: list[float], sigma_px: list[np.ndarray], error_px: list[np.ndarray]) -> dict:
    """A task's figures from its images' mean σ and sampled pixels: {'mean_sigma', 'spearman' (None: undefined),
    'deciles' (mean σ of each σ decile), 'decile_error' (mean |error| of each), 'pixels' (pooled pixel pairs)}."""
    sigma, error = np.concatenate(sigma_px), np.concatenate(error_px)
    deciles, decile_error = calibration(sigma, error)
    return {'mean_sigma': float(np.mean(sigma_means)), 'spearman': spearman(sigma, error), 'deciles': deciles,
            'decile_error': decile_error, 'pixels': int(sigma.size)}
