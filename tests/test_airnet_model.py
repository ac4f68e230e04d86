"""AirNet's recipe: encoder-only warm-up with InfoNCE, then restoration loss + 0.1 InfoNCE, with TUR or L1."""
import pytest
from basicsr.models import build_model
from conftest import make_options

from basicsr_tur.utils.options import parse_options

TINY_AIRNET = {'type': 'AirNet', 'batch_size': 6, 'n_groups': 1, 'n_blocks': 1}


def airnet_model(tmp_path, clean_root, paired_root, loss='TURLoss', warmup=2):
    """A tiny AirNetModel and a batch source from the options pipeline."""
    from basicsr.data import build_dataset
    path = make_options(tmp_path, clean_root, paired_root, loss=loss, model_type='AirNetModel',
                        network_g=dict(TINY_AIRNET, uncertainty_head=loss == 'TURLoss'),
                        train_set={'key_crop': True}, encoder_warmup_iter=warmup)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    return build_model(opt), build_dataset(opt['datasets']['train'])


def batch(dataset, n=6):
    """The first n samples collated."""
    import torch
    samples = [dataset[i] for i in range(n)]
    return {k: (torch.stack([s[k] for s in samples]) if k in ('lq', 'gt', 'lq_key') else [s[k] for s in samples])
            for k in samples[0]} | {'task_id': torch.tensor([s['task_id'] for s in samples])}


@pytest.mark.parametrize('loss', ['TURLoss', 'L1Loss'])
def test_warmup_trains_the_encoder_alone_then_both(tmp_path, clean_root, paired_root, loss):
    model, dataset = airnet_model(tmp_path, clean_root, paired_root, loss=loss)
    model.feed_data(batch(dataset))
    model.optimize_parameters(1)
    assert all(p.grad is None for p in model.net_g.R.parameters())
    assert set(model.get_current_log()) == {'l_contrast'}
    model.optimize_parameters(3)
    log = model.get_current_log()
    assert {'l_total', 'l_pix', 'l_contrast', 'l1/sr'} <= set(log)
    assert any(p.grad is not None for p in model.net_g.R.parameters())


def test_missing_key_crop_is_explained(tmp_path, clean_root, paired_root):
    model, dataset = airnet_model(tmp_path, clean_root, paired_root)
    data = batch(dataset)
    del data['lq_key']
    model.feed_data(data)
    with pytest.raises(ValueError, match='key_crop: true'):
        model.optimize_parameters(1)
