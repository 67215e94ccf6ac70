"""Train a small network on (Fashion-)MNIST and report test accuracy.

    python -m fusegrad.examples.mnist                  # Zigrad's MLP 784-128-64-10 on Fashion-MNIST
    python -m fusegrad.examples.mnist --model cnn --epochs 5 --checkpoint ckpt.safetensors
    python -m fusegrad.examples.mnist --model resnet18 --epochs 2 --batch-size 128
    python -m fusegrad.examples.mnist --tensorboard runs/mlp --graph mlp.svg --profile
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any, Sequence

import fusegrad as fg
from fusegrad import models, nn, optim
from fusegrad.examples.cli import run_main
from fusegrad.examples.progress import progress
from fusegrad.nn import functional as F

# Fashion-MNIST's training-set pixel statistics (after scaling to [0, 1]); MNIST's are close enough
MEANS = {"fashion-mnist": 0.2860, "mnist": 0.1307}
STDS = {"fashion-mnist": 0.3530, "mnist": 0.3081}


def build_model(kind: str) -> nn.Module:
    if kind == "mlp":  # Zigrad's MNIST network
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                             nn.Linear(64, 10))
    if kind == "resnet18":  # the 28x28 images as they are: the stages run at 28, 14, 7 and 4 pixels
        return models.resnet18(num_classes=10, in_channels=1, stem="cifar")
    return nn.Sequential(  # two conv blocks (with batch norm) + linear, like the classic small MNIST convnets
        nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 10))


def build_optimizer(name: str, params: Any, lr: float) -> optim.Optimizer:
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    return optim.AdamW(params, lr=lr)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fusegrad.examples.mnist", description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["mlp", "cnn", "resnet18"], default="mlp",
                   help="mlp: Zigrad's 784-128-64-10 MLP; cnn: two conv blocks and a linear layer; resnet18: "
                        "ResNet-18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool) and 1 input channel, "
                        "on the 28x28 images unpadded")
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    p.add_argument("--data-dir", default=None, help="folder holding the IDX files (default: search the usual places)")
    p.add_argument("--download", action="store_true", help="fetch the data set if it is missing")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay to 0 over the run)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="save model + optimizer + epoch here after every epoch")
    p.add_argument("--resume", default=None, help="continue from a checkpoint written by --checkpoint")
    p.add_argument("--limit", type=int, default=0, help="use only this many training samples (quick runs)")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="log loss, accuracy, learning rate and weight histograms for TensorBoard here each epoch")
    p.add_argument("--graph", metavar="PATH", default=None,
                   help="draw the model's layer graph to this file (.svg, .png, .pdf or .dot)")
    p.add_argument("--profile", action="store_true", help="print the kernel profile of the first epoch")
    p.add_argument("--no-jit", dest="jit", action="store_false",
                   help="build and run each training step's graph eagerly instead of replaying it with fg.jit")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.lr <= 0:
        p.error("--lr must be positive")
    return args


def load_data(args: argparse.Namespace) -> tuple[Any, Any]:
    cls = fg.data.datasets.FashionMNIST if args.dataset == "fashion-mnist" else fg.data.datasets.MNIST
    train = cls(root=args.data_dir, train=True, download=args.download)
    test = cls(root=args.data_dir, train=False, download=args.download)
    if args.limit:
        train = fg.data.Subset(train, list(range(min(args.limit, len(train)))))
    return train, test


def normalize(images: fg.Tensor, dataset: str) -> fg.Tensor:
    return (images - MEANS[dataset]) / STDS[dataset]


def evaluate(model: nn.Module, loader: Any, dataset: str, device: str = "cpu") -> float:
    model.eval()
    correct = total = 0
    with fg.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            predicted = model(normalize(images, dataset)).argmax(1)
            correct += int((predicted == labels).sum().item())
            total += labels.shape[0]
    model.train()
    return correct / max(total, 1)


def log_epoch(writer: Any, model: nn.Module, epoch: int, loss: float, accuracy: float, lr: float) -> None:
    writer.add_scalar("loss/train", loss, epoch)
    writer.add_scalar("accuracy/test", accuracy, epoch)
    writer.add_scalar("learning_rate", lr, epoch)
    for name, param in model.named_parameters():
        writer.add_histogram(f"weights/{name}", param, epoch)
    writer.flush()


def train(args: argparse.Namespace) -> float:
    fg.manual_seed(args.seed)
    train_set, test_set = load_data(args)
    model = build_model(args.model).to(args.device)
    opt = build_optimizer(args.optimizer, model.parameters(), args.lr)
    train_loader = fg.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    # the learning rate decays to zero over the run (cosine): the last epochs settle instead of bouncing
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(train_loader))
    start_epoch = 0
    if args.resume:
        state = fg.load(args.resume)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = int(state["epoch"])
    test_loader = fg.data.DataLoader(test_set, batch_size=1000)
    example = fg.zeros(1, 1, 28, 28, device=args.device)
    if args.graph:
        fg.viz.draw_module(model, example, args.graph)
        print(f"model graph written to {args.graph}", flush=True)
    writer = fg.tensorboard.SummaryWriter(args.tensorboard) if args.tensorboard else None
    if writer is not None:
        writer.add_graph(model, example)
    def train_step(images: fg.Tensor, labels: fg.Tensor) -> fg.Tensor:
        loss = F.cross_entropy(model(normalize(images, args.dataset)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = fg.jit(train_step) if args.jit else train_step
    accuracy = 0.0
    for epoch in range(start_epoch, args.epochs):
        train_loader.set_epoch(epoch)
        began, seen, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
        bar = progress(train_loader, total=len(train_loader), desc=f"epoch {epoch + 1}/{args.epochs}")
        profiling = args.profile and epoch == start_epoch
        with fg.profile() if profiling else contextlib.nullcontext() as profile:
            for images, labels in bar:
                loss = step(images.to(args.device), labels.to(args.device))
                schedule.step()
                seen += labels.shape[0]
                steps += 1
                loss_sum += loss.item()  # computed with the gradients: reading it costs no extra kernel
                if steps % 20 == 0 or steps == len(train_loader):
                    bar.set_postfix(loss=f"{loss_sum / steps:.4f}",
                                    samples_per_s=f"{seen / (time.perf_counter() - began):.0f}")
        bar.close()
        accuracy = evaluate(model, test_loader, args.dataset, args.device)
        elapsed = time.perf_counter() - began
        print(f"epoch {epoch + 1}: train loss {loss_sum / max(steps, 1):.4f}, test accuracy {accuracy:.2%}, "
              f"time {elapsed:.1f}s", flush=True)
        if profiling:
            print(f"kernel profile of epoch {epoch + 1} (training steps):\n{profile.table()}", flush=True)
        if writer is not None:
            log_epoch(writer, model, epoch + 1, loss_sum / max(steps, 1), accuracy, opt.param_groups[0]["lr"])
        if args.checkpoint:
            fg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
                     "epoch": epoch + 1}, args.checkpoint)
    if writer is not None:
        writer.close()
    print(f"test accuracy: {accuracy:.2%}")
    return accuracy


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(train, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
