"""PixelShuffle/Unshuffle, InstanceNorm, BatchNorm3d, channel dropout and LocalResponseNorm against torch."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from fusegrad.errors import InvalidValueError, ShapeError
from fusegrad.nn import functional as F
from tests.helpers import RNG, check_op, random_array

TF = torch.nn.functional


@pytest.mark.parametrize("shape,r", [((2, 12, 3, 5), 2), ((18, 2, 1), 3), ((2, 1, 4, 3, 2), 1)])
def test_pixel_shuffle_matches_torch(shape, r):
    check_op([shape], lambda x: F.pixel_shuffle(x, r), lambda x: TF.pixel_shuffle(x, r))
    check_op([shape], lambda x: nn.PixelShuffle(r)(x), lambda x: torch.nn.PixelShuffle(r)(x))


@pytest.mark.parametrize("shape,r", [((2, 3, 4, 6), 2), ((1, 9, 6), 3), ((2, 1, 2, 5, 5), 5)])
def test_pixel_unshuffle_matches_torch_and_inverts_shuffle(shape, r):
    check_op([shape], lambda x: F.pixel_unshuffle(x, r), lambda x: TF.pixel_unshuffle(x, r))
    x = fg.tensor(random_array(shape))
    np.testing.assert_array_equal(F.pixel_shuffle(nn.PixelUnshuffle(r)(x), r).numpy(), x.numpy())


def test_pixel_shuffle_rejects_bad_input():
    with pytest.raises(ShapeError, match="divisible by the square"):
        F.pixel_shuffle(fg.zeros(1, 6, 2, 2), 2)
    with pytest.raises(ShapeError, match="at least 3 dimensions"):
        F.pixel_shuffle(fg.zeros(4, 4), 2)
    with pytest.raises(ShapeError, match="divisible by downscale_factor"):
        F.pixel_unshuffle(fg.zeros(1, 1, 4, 5), 2)
    with pytest.raises(InvalidValueError, match="positive"):
        F.pixel_unshuffle(fg.zeros(1, 1, 4, 4), 0)


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 3, 4, 5), (2, 2, 3, 2, 3)])
def test_instance_norm_functional_matches_torch(shape):
    c = shape[1]
    check_op([shape, (c,), (c,)], lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-3),
             lambda x, w, b: TF.instance_norm(x, weight=w, bias=b, eps=1e-3), atol=1e-4, rtol=1e-4)
    check_op([shape], F.instance_norm, TF.instance_norm, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_instance_norm_module_running_stats_and_eval_match_torch(dims):
    shape = (3, 5) + (4, 3, 2)[:dims]
    ours = getattr(nn, f"InstanceNorm{dims}d")(5, affine=True, track_running_stats=True, momentum=0.3)
    ref = getattr(torch.nn, f"InstanceNorm{dims}d")(5, affine=True, track_running_stats=True, momentum=0.3)
    weight, bias = random_array((5,)), random_array((5,))
    for m, t in ((ours, fg.tensor), (ref, torch.tensor)):
        m.weight.data, m.bias.data = t(weight), t(bias)
    for _ in range(2):
        x = random_array(shape)
        np.testing.assert_allclose(ours(fg.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), atol=1e-4)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(ref, name).numpy(), atol=1e-5)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.eval()
    ref.eval()
    x = random_array(shape)
    np.testing.assert_allclose(ours(fg.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), atol=1e-4)


def test_instance_norm_unbatched_input_and_weight_gradient_match_torch():
    ours, ref = nn.InstanceNorm2d(3, affine=True), torch.nn.InstanceNorm2d(3, affine=True)
    x, w = random_array((3, 4, 5)), random_array((3, 4, 5))
    out = ours(fg.tensor(x, requires_grad=True))
    t_out = ref(torch.tensor(x, requires_grad=True))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), atol=1e-4)
    (out * fg.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad.numpy(), ref.bias.grad.numpy(), atol=1e-4)


def test_instance_norm_rejects_bad_input():
    with pytest.raises(ShapeError, match="3-D .unbatched. or 4-D"):
        nn.InstanceNorm2d(3)(fg.zeros(2, 3, 4, 4, 1))
    with pytest.raises(ShapeError, match="match num_features"):
        nn.InstanceNorm1d(4, affine=True)(fg.zeros(2, 3, 5))
    with pytest.raises(ShapeError, match="more than 1 spatial element"):
        F.instance_norm(fg.zeros(2, 3, 1, 1))
    with pytest.raises(ShapeError, match="at least one spatial dim"):
        F.instance_norm(fg.zeros(2, 3))


def test_batch_norm3d_matches_torch_in_train_and_eval():
    ours, ref = nn.BatchNorm3d(3, momentum=0.2), torch.nn.BatchNorm3d(3, momentum=0.2)
    x = random_array((2, 3, 3, 4, 2))
    out, t_out = ours(fg.tensor(x, requires_grad=True)), ref(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), atol=1e-4)
    w = random_array(out.shape)
    (out * fg.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.running_var.numpy(), ref.running_var.numpy(), atol=1e-5)
    ours.eval()
    ref.eval()
    np.testing.assert_allclose(ours(fg.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), atol=1e-4)
    with pytest.raises(ShapeError, match="5-D"):
        ours(fg.zeros(3, 4, 2, 2))


@pytest.mark.parametrize("shape,size", [((2, 7, 3, 4), 5), ((1, 4, 6), 2), ((2, 5, 2, 3, 2), 3), ((1, 3, 4), 8)])
def test_local_response_norm_matches_torch(shape, size):
    check_op([shape], lambda x: F.local_response_norm(x, size, alpha=0.3, beta=0.6, k=1.5),
             lambda x: TF.local_response_norm(x, size, alpha=0.3, beta=0.6, k=1.5), atol=1e-5, rtol=1e-4)
    check_op([shape], lambda x: nn.LocalResponseNorm(size)(x), lambda x: torch.nn.LocalResponseNorm(size)(x))


def test_local_response_norm_rejects_bad_input():
    with pytest.raises(ShapeError, match="3D or higher"):
        F.local_response_norm(fg.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="positive"):
        nn.LocalResponseNorm(0)(fg.zeros(1, 2, 3))


@pytest.mark.parametrize("name,shape,channel_dims", [("dropout2d", (8, 16, 3, 5), 2), ("dropout2d", (8, 16, 7), 2),
                                                     ("dropout3d", (4, 16, 2, 3, 2), 2),
                                                     ("dropout3d", (64, 2, 3, 2), 1)])
def test_channel_dropout_zeroes_whole_channels(name, shape, channel_dims):
    p = 0.3
    x = fg.tensor(RNG.uniform(1, 2, size=shape).astype("float32"), requires_grad=True)
    out = getattr(F, name)(x, p)
    out.sum().backward()
    per_channel = out.numpy().reshape(*shape[:channel_dims], -1)
    kept = np.all(per_channel != 0, axis=-1)
    assert np.all(kept | np.all(per_channel == 0, axis=-1)), "a channel was only partly dropped"
    np.testing.assert_allclose(per_channel[kept], (x.numpy().reshape(per_channel.shape) / (1 - p))[kept], rtol=1e-6)
    grad = x.grad.numpy().reshape(per_channel.shape)
    want = np.broadcast_to(np.where(kept[..., None], 1 / (1 - p), 0.0), grad.shape)
    np.testing.assert_allclose(grad, want, rtol=1e-6)
    assert 0.15 < 1 - kept.mean() < 0.45


def test_channel_dropout_modules_eval_identity_and_errors():
    x = fg.tensor(random_array((2, 3, 4, 4)))
    for layer in (nn.Dropout2d(0.5), nn.Dropout3d(0.5)):
        layer.eval()
        np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout2d(1.0)(x).numpy(), np.zeros(x.shape, "float32"))
    with pytest.raises(ShapeError, match="3-D or 4-D"):
        F.dropout2d(fg.zeros(2, 3), 0.5)
    with pytest.raises(ShapeError, match="4-D or 5-D"):
        nn.Dropout3d()(fg.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout3d(fg.zeros(1, 2, 3, 4, 5), 1.5)
