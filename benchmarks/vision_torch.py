"""Torch references for torchvision's ResNet-18/34/50 and MobileNetV2, for the vision benchmark's peers and
the model tests (torchvision cannot be installed beside the torch used here). They reproduce the
architectures and torchvision's state-dict names, so a fusegrad model's state dict loads into them;
written afresh: a residual block here is one class driven by its list of convolutions."""
from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """convN -> bnN for N = 1, 2, ..., a ReLU between the pairs and after the sum with the shortcut."""

    def __init__(self, convs: list[nn.Conv2d], shortcut: nn.Module | None):
        super().__init__()
        for i, conv in enumerate(convs, 1):
            self.add_module(f"conv{i}", conv)
            self.add_module(f"bn{i}", nn.BatchNorm2d(conv.out_channels))
        self.relu = nn.ReLU()
        self.downsample = shortcut
        self.depth = len(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i in range(1, self.depth + 1):
            y = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y))
            y = self.relu(y) if i < self.depth else y
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)


def _block(cin: int, planes: int, stride: int, bottleneck: bool) -> ResidualBlock:
    out = planes * (4 if bottleneck else 1)
    shortcut = nn.Sequential(_conv(cin, out, 1, stride), nn.BatchNorm2d(out)) if stride > 1 or cin != out else None
    if bottleneck:  # the stride sits on the 3x3 convolution
        return ResidualBlock([_conv(cin, planes, 1), _conv(planes, planes, 3, stride), _conv(planes, out, 1)], shortcut)
    return ResidualBlock([_conv(cin, planes, 3, stride), _conv(planes, planes, 3)], shortcut)


class TorchResNet(nn.Module):
    def __init__(self, counts: list[int], bottleneck: bool, num_classes: int = 1000, stem: str = "imagenet",
                 in_channels: int = 3):
        super().__init__()
        imagenet = stem == "imagenet"
        self.conv1 = _conv(in_channels, 64, 7, 2) if imagenet else _conv(in_channels, 64, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        cin = 64
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), counts), 1):
            blocks = []
            for i in range(count):
                blocks.append(_block(cin, planes, 2 if stage > 1 and i == 0 else 1, bottleneck))
                cin = planes * (4 if bottleneck else 1)
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        for stage in range(1, 5):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(x.mean((2, 3)))


def resnet18(**kwargs) -> TorchResNet:
    return TorchResNet([2, 2, 2, 2], False, **kwargs)


def resnet34(**kwargs) -> TorchResNet:
    return TorchResNet([3, 4, 6, 3], False, **kwargs)


def resnet50(**kwargs) -> TorchResNet:
    return TorchResNet([3, 4, 6, 3], True, **kwargs)


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout), nn.ReLU6())


class TorchInvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        head = [_conv_bn_relu6(cin, hidden, 1)] if expand > 1 else []
        self.conv = nn.Sequential(*head, _conv_bn_relu6(hidden, hidden, 3, stride, hidden), _conv(hidden, cout, 1),
                                  nn.BatchNorm2d(cout))
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.skip else self.conv(x)


class TorchMobileNetV2(nn.Module):
    """Width multiplier 1: the channel counts are the table's as written (all multiples of 8)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(in_channels, 32, 3, 2)]
        cin = 32
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)]:
            for i in range(n):
                layers.append(TorchInvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def mobilenet_v2(**kwargs) -> TorchMobileNetV2:
    return TorchMobileNetV2(**kwargs)
