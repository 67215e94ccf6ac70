"""Ready-made models written with `fusegrad.nn`."""
from .gpt import GPT, GPTConfig
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50

__all__ = ["GPT", "GPTConfig", "BasicBlock", "Bottleneck", "MobileNetV2", "ResNet", "mobilenet_v2", "resnet18",
           "resnet34", "resnet50"]
