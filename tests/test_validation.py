"""Validation during training: the training's autocast under inference_mode, and the inputs' row scored once."""
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.models import build_model
from conftest import make_options

from basicsr_tur.data.loaders import build_loader
from basicsr_tur.models import tur_model
from basicsr_tur.utils.options import parse_options


def model_and_val_loader(tmp_path, clean_root, paired_root, **train):
    """A tiny TURModel (its `train` options updated with `train`, PSNR and SSIM as metrics) and its val loader."""
    path = make_options(tmp_path, clean_root, paired_root, **train)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'val:pbar=false',
                                                 'val:metrics:ssim={type: calculate_ssim, crop_border: 0}'])
    val_opt = opt['datasets']['val']
    return build_model(opt), build_loader(build_dataset(val_opt), val_opt, opt)


def test_input_row_is_scored_at_the_first_validation_of_a_test_set_only(tmp_path, clean_root, paired_root,
                                                                        monkeypatch):
    model, loader = model_and_val_loader(tmp_path, clean_root, paired_root)
    scored = []

    def counting(data, opt):
        scored.append(data['img'])
        return calculate(data, opt)

    calculate = tur_model.calculate_metric
    monkeypatch.setattr(tur_model, 'calculate_metric', counting)
    first = model.validation(loader, 1, None)
    images = sum(first['counts'].values())
    assert len(scored) == images * 2 * 2  # PSNR and SSIM of the restored and of the input images
    scored.clear()
    second = model.validation(loader, 2, None)
    assert len(scored) == images * 2  # the restored images only
    assert second['input'] == first['input'] and second['model'] == first['model']


def test_input_row_of_another_test_set_is_scored_apart(tmp_path, clean_root, paired_root):
    model, loader = model_and_val_loader(tmp_path, clean_root, paired_root)
    model.validation(loader, 1, None)
    assert set(model.input_rows) == {'tiny_val'}
    loader.dataset.opt['name'] = 'other_val'
    model.validation(loader, 1, None)
    assert set(model.input_rows) == {'tiny_val', 'other_val'}
    assert model.input_rows['other_val'] == model.input_rows['tiny_val']  # the same images: the same sums


@pytest.mark.parametrize('precision, dtype', [('bf16', torch.bfloat16), (None, None)])
def test_validation_forward_runs_under_the_training_autocast_in_inference_mode(precision, dtype, tmp_path,
                                                                                clean_root, paired_root):
    model, loader = model_and_val_loader(tmp_path, clean_root, paired_root, mixed_precision=precision)
    seen = []
    conv = next(m for m in model.get_bare_model(model.net_g).modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, output: seen.append(
        (torch.is_inference_mode_enabled(), torch.is_autocast_enabled('cpu') and torch.get_autocast_dtype('cpu'),
         output.dtype)))
    results = model.validation(loader, 1, None)
    assert seen and all(s == (True, dtype or False, dtype or torch.float32) for s in seen), seen[0]
    assert model.output.dtype == torch.float32  # what the metrics read
    assert all(v == v for task in results['model']['tasks'].values() for v in task.values())
