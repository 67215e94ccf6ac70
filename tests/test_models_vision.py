"""ResNet and MobileNetV2: torchvision's names, initialization and outputs (through a safetensors state dict)."""
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import fusegrad as fg
from fusegrad import models
from tests import torchvision_models_shim as shim
from tests.helpers import random_array


def loaded(ours, ref, images, path):
    """ours with ref's state dict, calibrated on images and written by safetensors, loaded strictly."""
    generator = torch.Generator().manual_seed(int(np.abs(images).sum() * 1000) % 2**31)
    shim.calibrated(ref, torch.tensor(images), generator)
    state = ref.state_dict()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    ours.load_state_dict(fg.load(path))
    return ours


def assert_close(got, want, rtol=2e-4):
    want = want.detach().numpy()
    np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_resnet18_cifar_stem_matches_torch_in_eval_and_train(tmp_path):
    ref = shim.resnet18(num_classes=10, stem="cifar")
    ours = models.resnet18(num_classes=10, stem="cifar")
    ours = loaded(ours, ref, random_array((4, 3, 32, 32)), tmp_path / "resnet18.safetensors")
    images = random_array((2, 3, 32, 32))
    ours.eval()
    assert_close(ours(fg.tensor(images)), ref(torch.tensor(images)))

    ours.train()
    ref.train()
    weights = random_array((2, 10))
    out, t_out = ours(fg.tensor(images)), ref(torch.tensor(images))
    assert_close(out, t_out)
    (out * fg.tensor(weights)).sum().backward()
    (t_out * torch.tensor(weights)).sum().backward()
    params, t_params = dict(ours.named_parameters()), dict(ref.named_parameters())
    for name in ("conv1.weight", "layer3.0.downsample.1.weight", "fc.bias"):
        assert_close(params[name].grad, t_params[name].grad, rtol=1e-3)
    buffers, t_buffers = dict(ours.named_buffers()), dict(ref.named_buffers())
    for name in ("layer2.1.bn2.running_var", "bn1.num_batches_tracked"):
        assert_close(buffers[name], t_buffers[name])


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("resnet50", 32), ("mobilenet_v2", 32)])
def test_imagenet_models_match_torch_in_eval(name, size, tmp_path):
    ref, ours = getattr(shim, name)(), getattr(models, name)()
    ours = loaded(ours, ref, random_array((2, 3, size, size)), tmp_path / f"{name}.safetensors").eval()
    images = random_array((1, 3, size, size))
    with fg.no_grad():
        assert_close(ours(fg.tensor(images)), ref(torch.tensor(images)))


def test_state_dict_names_follow_torchvision():
    resnet = models.resnet50(num_classes=7)
    names = set(resnet.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv3.weight",
            "layer1.0.downsample.0.weight", "layer4.2.bn3.bias", "fc.weight"} <= names
    assert set(models.resnet50(stem="cifar").state_dict()) == names
    mobilenet = set(models.mobilenet_v2().state_dict())
    assert {"features.0.0.weight", "features.0.1.running_var", "features.1.conv.0.0.weight",
            "features.1.conv.1.weight", "features.2.conv.3.bias", "features.18.0.weight",
            "classifier.1.weight"} <= mobilenet
    assert "features.19.0.weight" not in mobilenet and "features.1.conv.3.weight" not in mobilenet


def parameter(model, name):
    return dict(model.named_parameters())[name]


def conv_std(weight):
    return math.sqrt(2.0 / (weight.shape[0] * math.prod(weight.shape[2:])))


def test_default_initialization_is_torchvisions():
    resnet = models.resnet34(num_classes=5, in_channels=1, stem="cifar")
    assert resnet.conv1.weight.shape == (64, 1, 3, 3)
    for weight in (parameter(resnet, "layer3.1.conv2.weight"),
                   parameter(resnet, "layer4.0.downsample.0.weight")):
        assert abs(float(weight.numpy().std()) / conv_std(weight) - 1) < 0.05
    np.testing.assert_array_equal(parameter(resnet, "layer2.0.bn1.weight").numpy(), np.ones(128, "float32"))
    np.testing.assert_array_equal(parameter(resnet, "layer2.0.bn1.bias").numpy(), np.zeros(128, "float32"))
    zeroed = models.resnet50(zero_init_residual=True)
    assert not parameter(zeroed, "layer1.0.bn3.weight").numpy().any()
    assert parameter(zeroed, "layer1.0.bn2.weight").numpy().all()
    assert not parameter(models.resnet18(zero_init_residual=True), "layer2.1.bn2.weight").numpy().any()
    mobilenet = models.mobilenet_v2(num_classes=10)
    depthwise = parameter(mobilenet, "features.5.conv.1.0.weight")
    assert depthwise.shape == (192, 1, 3, 3)
    assert abs(float(depthwise.numpy().std()) / conv_std(depthwise) - 1) < 0.1
    linear = parameter(mobilenet, "classifier.1.weight").numpy()
    assert abs(float(linear.std()) / 0.01 - 1) < 0.1 and not mobilenet.classifier[1].bias.numpy().any()


def test_cifar_stem_keeps_resolution_and_one_channel_input_works():
    model = models.resnet18(num_classes=3, in_channels=1, stem="cifar").eval()
    with fg.no_grad():
        assert model(fg.tensor(random_array((2, 1, 28, 28)))).shape == (2, 3)
        features = model.layer1(model.relu(model.bn1(model.conv1(fg.tensor(random_array((1, 1, 28, 28)))))))
    assert features.shape == (1, 64, 28, 28)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="stem"):
        models.resnet18(stem="tiny")
    with pytest.raises(ValueError, match="4 stages"):
        models.ResNet(models.BasicBlock, [2, 2, 2])
    with pytest.raises(ValueError, match="groups=1"):
        models.resnet18(groups=2)
    with pytest.raises(ValueError, match="inverted_residual_setting"):
        models.MobileNetV2(inverted_residual_setting=[[1, 16, 1]])
