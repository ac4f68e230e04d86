"""Inference in one place: where a model comes from, and the restorer that runs it.

- source.py: `model_source(opt=..., arch=..., preset=..., weights=..., ...)`, one keyword API for
  a test options file, an arch with its arguments and weights, or a preset; a ModelSource.
- restorer.py: `load_restorer(source, device, precision, tile, ...)`, a Restorer (whole or tiled,
  a batch of tiles per forward, fp32/bf16/fp16, val.pad, the TUR σ); `load_network` for callers
  that run the network themselves (the ONNX export, compare_images.py).
- images.py: any 8/16-bit image file in, staged for the device, and back as an image of its kind.
- jobs.py: a list of image files restored to files (inputs found, outputs planned before anything
  is written, reading and writing in threads beside the network); restore.py's and app.py's.

Used by restore.py (the command), app.py (the web page), the ONNX export, scripts/compare_images.py
and bench/bench_restore.py. The test pipeline (test.py) evaluates through the training model
(models/tur_model.py), which validation shares.
"""
from basicsr_tur.inference.images import (
    Staged,
    apply_exif_orientation,
    exif_orientation,
    read_image,
    stage_image,
    to_image,
    to_input,
)
from basicsr_tur.inference.jobs import (
    IMAGE_EXTENSIONS,
    Job,
    collect_inputs,
    plan_jobs,
    restore_job,
    restore_jobs,
)
from basicsr_tur.inference.restorer import (
    PRECISIONS,
    TILE_BATCH_PIXELS,
    Restored,
    Restorer,
    default_tile_batch,
    load_network,
    load_restorer,
    new_network,
    pick_device,
)
from basicsr_tur.inference.source import (
    KeyCheck,
    ModelSource,
    choose_param_key,
    input_channels,
    model_source,
    parse_arch_opt,
    source_from_arch,
    source_from_options,
    source_from_preset,
)

__all__ = [
    'IMAGE_EXTENSIONS', 'Job', 'collect_inputs', 'plan_jobs', 'restore_job', 'restore_jobs',
    'PRECISIONS', 'TILE_BATCH_PIXELS', 'KeyCheck', 'ModelSource', 'Restored', 'Restorer', 'Staged',
    'apply_exif_orientation', 'choose_param_key', 'default_tile_batch', 'exif_orientation',
    'input_channels', 'load_network', 'load_restorer', 'model_source', 'new_network',
    'parse_arch_opt', 'pick_device', 'read_image', 'source_from_arch', 'source_from_options',
    'source_from_preset', 'stage_image', 'to_image', 'to_input',
]
