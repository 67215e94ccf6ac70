"""`python -m fusegrad`: a short demo that trains a 2-layer MLP with the core API and reports accuracy.

The data set is synthetic: points from a 2-D standard normal, labelled by whether they lie
outside the circle that splits the distribution in half (radius^2 = 2 ln 2), so the classes are
balanced and no straight line separates them.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import fusegrad as fg


def make_data(n: int) -> tuple[fg.Tensor, fg.Tensor]:
    """Inputs (n, 2) and one-hot targets (n, 2): class 1 is the ring outside the median circle."""
    x = fg.randn(n, 2)
    outside = ((x * x).sum(1) > 2 * math.log(2)).long()
    onehot = (outside.reshape(n, 1) == fg.arange(2).reshape(1, 2)).float()
    fg.realize(x, onehot)
    return x, onehot


def init_params(hidden: int) -> list[fg.Tensor]:
    """Weights with He initialisation (std sqrt(2 / fan_in)) and zero biases of a 2 -> hidden -> 2 MLP."""
    w1 = fg.randn(2, hidden)  # sqrt(2 / 2) = 1
    w2 = fg.randn(hidden, 2) * math.sqrt(2 / hidden)
    params = [w1, fg.zeros(hidden), w2, fg.zeros(2)]
    fg.realize(*params)
    return [p.detach().requires_grad_() for p in params]


def forward(params: list[fg.Tensor], x: fg.Tensor) -> fg.Tensor:
    """Logits (n, 2) of the MLP for inputs x (n, 2)."""
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).relu() @ w2 + b2


def cross_entropy(logits: fg.Tensor, onehot: fg.Tensor) -> fg.Tensor:
    """Mean softmax cross-entropy, written out with exp/log/sum (max subtracted for stability)."""
    shifted = logits - logits.amax(1, keepdim=True).detach()
    log_probs = shifted - shifted.exp().sum(1, keepdim=True).log()
    return -(onehot * log_probs).sum(1).mean()


def accuracy(logits: fg.Tensor, onehot: fg.Tensor) -> float:
    """Share of rows whose larger logit is the true class (two classes: compare the logit gap)."""
    predicted = (logits * fg.tensor([-1.0, 1.0])).sum(1) > 0
    truth = (onehot * fg.tensor([0.0, 1.0])).sum(1) > 0
    return (predicted == truth).float().mean().item()


def progress(step: int, total: int, loss: float, width: int = 30) -> None:
    """Redraw a one-line text progress bar on stderr."""
    done = width * step // total
    sys.stderr.write(f"\rtraining [{'#' * done}{'.' * (width - done)}] {step}/{total}  loss {loss:.4f}")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusegrad", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    fg.manual_seed(args.seed)
    x_train, y_train = make_data(args.batch)
    x_test, y_test = make_data(2048)
    params = init_params(args.hidden)
    start = time.perf_counter()
    loss_value = float("nan")
    for step in range(1, args.steps + 1):
        loss = cross_entropy(forward(params, x_train), y_train)
        loss.backward()
        with fg.no_grad():
            for p in params:
                p.sub_(p.grad * args.lr)
                p.grad = None
        # realize the updated weights so each step starts from buffers, not a growing lazy chain
        fg.realize(*params)
        if step % 10 == 0 or step == args.steps:
            loss_value = loss.item()
            progress(step, args.steps, loss_value)
    sys.stderr.write("\n")
    with fg.no_grad():
        train_acc = accuracy(forward(params, x_train), y_train)
        test_acc = accuracy(forward(params, x_test), y_test)
    seconds = time.perf_counter() - start
    print(f"final loss {loss_value:.4f}  train accuracy {train_acc:.3f}  test accuracy {test_acc:.3f}  "
          f"({args.steps} steps in {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
