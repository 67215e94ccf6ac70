"""The torch references of torchvision's vision models (benchmarks/vision_torch.py) and a calibration of
their batch-norm statistics for the eval-mode tests."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from vision_torch import mobilenet_v2, resnet18, resnet50  # noqa: E402  (benchmarks is not a package)

__all__ = ["calibrated", "mobilenet_v2", "resnet18", "resnet50"]


def calibrated(model: nn.Module, images: torch.Tensor, generator: torch.Generator) -> nn.Module:
    """The model with random batch-norm affine parameters and running statistics measured on images (an
    average of a training pass, variances at least 0.1), so eval mode exercises every buffer at a sane scale."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.copy_(torch.rand(m.num_features, generator=generator) * 0.4 - 0.2)
            m.momentum = None
        model.train()(images)
        for m in norms:  # a channel all but constant over a few small images would divide by ~sqrt(eps)
            m.running_var.clamp_(min=0.1)
            m.momentum = 0.1
    return model.eval()
