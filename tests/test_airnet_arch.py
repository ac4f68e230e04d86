"""AirNet: official size, the MoCo training step and queue, the deformable convolution, the frozen encoder of TUR's
recipe (the checks shared by every backbone: test_archs.py; the released checkpoints: test_checkpoint.py)."""
import copy

import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names
from torch.nn import functional as F

from basicsr_tur.archs.airnet_arch import DCNLayer
from basicsr_tur.utils.errors import UserError

DIM, BATCH = 16, 2  # reduced MoCo: queue of 32 keys


def tiny(head: bool = False, seed: int = 0):
    """One group of one block (two DGMs), a 16-d embedding and a 32-key queue."""
    torch.manual_seed(seed)
    return build_network({'type': 'AirNet', 'n_groups': 1, 'n_blocks': 1, 'encoder_dim': DIM,
                          'batch_size': BATCH, 'uncertainty_head': head})


def test_official_parameter_count():
    # R 6,290,441 + encoder_q 1,319,936 + encoder_k 1,319,936 (frozen but a parameter, as the official count has
    # it); the queue (256, 1280) and BatchNorm statistics are buffers. The head adds 2 x 36,928 + 1,731. Counted
    # on the meta device (shapes only).
    with torch.device('meta'):
        net = build_network({'type': 'AirNet'})
        head = build_network({'type': 'AirNet', 'uncertainty_head': True})
    assert sum(p.numel() for p in net.parameters()) == 8_930_313
    assert sum(p.numel() for p in head.parameters()) == 8_930_313 + 2 * 36_928 + 1_731


def test_official_queue_holds_batch_size_times_dim_keys():
    with torch.device('meta'):
        state = build_network({'type': 'AirNet'}).state_dict()
    assert state['E.E.queue'].shape == (256, 5 * 256)
    assert state['E.E.queue_ptr'].shape == (1,) and tiny().state_dict()['E.E.queue_ptr'].tolist() == [0]


def test_eval_ignores_the_key_crop():
    net = tiny().eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x, torch.rand_like(x)), net(x))
    assert net.E.E.queue_ptr.item() == 0


def test_bf16_autocast_runs_the_deformable_convolution_in_float32():
    # torchvision's CPU deform_conv2d has no bfloat16 kernel and CPU autocast does not cover it: without the
    # float32 island in DCNLayer, `mixed_precision: bf16` failed on AirNet.
    net = tiny(head=True).eval()
    x = torch.rand(BATCH, 3, 12, 12)
    with torch.no_grad():
        reference = net(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            restored = net(x)
    assert (restored.float() - reference).abs().mean() < 0.01  # bf16 rounding only
    net.train()  # the encoder's batch norms use batch statistics from here on
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, u = net(x, with_uncertainty=True)
    out.float().mean().backward()
    dcn = next(m for m in net.modules() if isinstance(m, DCNLayer))
    assert dcn.weight.grad is not None and torch.isfinite(dcn.weight.grad).all() and torch.isfinite(u).all()


def test_training_forward_returns_logits_over_the_queue_and_zero_labels():
    net = tiny(head=True).train()
    x = torch.rand(BATCH, 3, 12, 12)
    result = net(x, torch.rand_like(x), with_uncertainty=True)
    assert result['restored'].shape == x.shape and result['uncertainty'].shape == x.shape
    assert result['logits'].shape == (BATCH, 1 + BATCH * DIM)
    assert result['labels'].dtype == torch.long and result['labels'].tolist() == [0] * BATCH
    assert set(net(x, torch.rand_like(x))) == {'restored', 'logits', 'labels'}


def test_queue_pointer_advances_by_the_batch_size_and_enqueues_unit_keys():
    net = tiny().train()
    moco = net.E.E
    x = torch.rand(BATCH, 3, 12, 12)
    queue_before = moco.queue.clone()
    net.encoder_forward(x, x)
    assert moco.queue_ptr.item() == BATCH
    assert not torch.equal(moco.queue[:, :BATCH], queue_before[:, :BATCH])
    assert torch.equal(moco.queue[:, BATCH:], queue_before[:, BATCH:])
    assert torch.allclose(moco.queue[:, :BATCH].norm(dim=0), torch.ones(BATCH))
    # Place the pointer at the queue's end as a checkpoint would (the step reads the pointer's host copy, which
    # loading sets; issue 20).
    moco.load_state_dict({**moco.state_dict(), 'queue_ptr': torch.tensor([moco.K - BATCH])})
    net.encoder_forward(x, x)
    assert moco.queue_ptr.item() == 0  # wrapped around


def test_encoder_forward_leaves_the_restorer_untouched():
    net = tiny().train()
    x = torch.rand(BATCH, 3, 12, 12)
    _, logits, labels = net.encoder_forward(x, torch.rand_like(x))
    F.cross_entropy(logits, labels).backward()
    assert all(p.grad is None for p in net.R.parameters())
    assert all(p.grad is None for p in net.E.E.encoder_k.parameters())
    assert net.E.E.encoder_q.mlp[0].weight.grad is not None


def test_key_encoder_follows_the_query_encoder_by_momentum():
    net = tiny().train()
    moco = net.E.E
    x = torch.rand(BATCH, 3, 12, 12)
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(1.0)
    k_before = [p.clone() for p in moco.encoder_k.parameters()]
    net.encoder_forward(x, x)
    for p_q, p_k, before in zip(moco.encoder_q.parameters(), moco.encoder_k.parameters(), k_before):
        assert torch.allclose(p_k, before * 0.999 + p_q * 0.001)
        assert not p_k.requires_grad


def test_batch_size_not_dividing_the_queue_is_named():
    net = tiny().train()
    x = torch.rand(3, 3, 12, 12)
    with pytest.raises(UserError) as err:
        net.encoder_forward(x, x)
    assert_names(err, 'AirNet', 'batch size 3', 'queue length 32')


def test_deformable_offsets_use_the_mmcv_layout():
    # Even offset channels are dy, odd ones dx, per kernel tap (mmcv's layout, which torchvision shares):
    # dy = +1 everywhere samples one row lower; the zero-initialised mask logits give a constant 0.5 modulation.
    torch.manual_seed(0)
    dcn = DCNLayer(4, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        dcn.conv_offset_mask.bias[0:18:2] = 1.0
    x = torch.rand(1, 4, 7, 9)
    # Tap row i of output row h reads input row h + i (zero outside): no zero row on top, two below.
    expected = 0.5 * F.conv2d(F.pad(x, (1, 1, 0, 2)), dcn.weight)
    with torch.no_grad():
        assert torch.allclose(dcn(x, torch.rand_like(x)), expected, atol=1e-6)


def test_restorer_width_other_than_encoder_map_is_refused():
    with pytest.raises(UserError) as err:
        build_network({'type': 'AirNet', 'n_feats': 32})
    assert_names(err, 'AirNet', 'n_feats', '64', '32')


def test_positional_flag_in_place_of_the_key_is_refused():
    with pytest.raises(TypeError) as err:
        tiny()(torch.rand(1, 3, 8, 8), True)
    assert_names(err, 'x_key', 'True', 'with_uncertainty')


def test_frozen_encoder_stops_requiring_gradients_and_the_restorer_does_not():
    # TUR's AirNet_uncertainty(fix_E=True) sets requires_grad False on every encoder parameter, key encoder included.
    net = tiny(head=True)
    net.freeze_encoder()
    assert not any(p.requires_grad for p in net.E.parameters())
    assert all(p.requires_grad for p in net.R.parameters())
    assert all(p.requires_grad for p in net.uncertainty_head.parameters())


def test_frozen_encoder_refuses_the_contrastive_step():
    # The MoCo step would move the key encoder by momentum and overwrite the queue of a frozen encoder.
    net = tiny().train()
    net.freeze_encoder()
    x = torch.rand(BATCH, 3, 12, 12)
    queue = net.E.E.queue.clone()
    for kwargs in ({}, {'encoder_only': True}):
        with pytest.raises(RuntimeError) as err:
            net(x, torch.rand_like(x), **kwargs)
        assert_names(err, 'freeze_encoder', 'x_key')
    assert torch.equal(net.E.E.queue, queue) and net.E.E.queue_ptr.item() == 0


def test_training_forward_without_key_is_the_restorer_on_the_query_encoder_in_batch_mode():
    # TUR's training path with fix_E: CBDE.inference(x) = encoder_q(x), the module in train mode (batch statistics).
    net = tiny(head=True).train()
    net.freeze_encoder()
    reference = copy.deepcopy(net)
    x = torch.rand(BATCH, 3, 12, 12)
    with torch.no_grad():
        out, u = net(x, with_uncertainty=True)
        expected, feat = reference.R(x, reference.E.E.encoder_q(x)[2])
        assert torch.equal(out, expected) and torch.equal(u, reference.uncertainty_head(feat))
        assert not torch.allclose(out, reference.eval()(x))  # eval mode (running statistics) differs


def test_frozen_encoder_batch_norm_keeps_updating_its_running_statistics_in_training_mode():
    # Faithful to TUR: requires_grad False freezes parameters only; a BatchNorm in train mode still updates its
    # running mean/var (momentum 0.1), and the eval path reads them. Only the query encoder runs, so the key
    # encoder's statistics stay put.
    net = tiny().train()
    net.freeze_encoder()
    bn_q, bn_k = net.E.E.encoder_q.E_pre.backbone[1], net.E.E.encoder_k.E_pre.backbone[1]
    mean_q, mean_k, weight = bn_q.running_mean.clone(), bn_k.running_mean.clone(), bn_q.weight.clone()
    net(torch.rand(BATCH, 3, 12, 12))
    assert not torch.equal(bn_q.running_mean, mean_q) and bn_q.num_batches_tracked.item() == 1
    assert torch.equal(bn_k.running_mean, mean_k) and torch.equal(bn_q.weight, weight)
