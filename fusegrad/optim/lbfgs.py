"""L-BFGS with torch's algorithm: a two-loop recursion over a limited history, optional strong Wolfe search.

The vectors (parameters, gradients, directions, the history) are flat device tensors and every vector
update is a tensor op; the scalars that steer control flow (the line search, the stopping tests) are
read back to the host, as torch reads them. Scalars torch keeps as tensors of the parameters' dtype
(the history's 1 / y.s, the Hessian scale, the recursion's coefficients) stay device tensors here too,
so float32 runs round as torch's do.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from ..autograd import enable_grad, no_grad
from ..capturing import is_capturing
from ..errors import Error, JitError, StateDictError
from ..flat import bind
from ..tensor import Tensor, cat
from .optimizer import Optimizer
from .state_check import check_groups, check_state

_STATE_KEYS = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")


def _cubic_minimum(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                   bounds: tuple[float, float] | None = None) -> float:
    """The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to bounds (default [x1, x2])."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    square = d1 * d1 - g1 * g2
    if square < 0:
        return (low + high) / 2.0
    d2 = math.sqrt(square)
    if x1 <= x2:
        point = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        point = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(point, low), high)


class _Bracket:
    """The two ends of the interval the zoom phase narrows: step, loss, gradient and slope at each."""

    def __init__(self, steps: list[float], losses: list[float], grads: list[Tensor], slopes: list[float]):
        self.t, self.f, self.g, self.gtd = steps, losses, grads, slopes

    def low_high(self) -> tuple[int, int]:
        return (0, 1) if self.f[0] <= self.f[-1] else (1, 0)

    def set(self, i: int, t: float, f: float, g: Tensor, gtd: float) -> None:
        self.t[i], self.f[i], self.g[i], self.gtd[i] = t, f, g, gtd


def _strong_wolfe(evaluate: Callable[[float], tuple[float, Tensor]], d: Tensor, t: float, f: float, g: Tensor,
                  gtd: float, c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                  max_ls: int = 25) -> tuple[float, Tensor, float, int]:
    """A step t along d meeting the strong Wolfe conditions: (loss, gradient, t, evaluations)."""
    d_norm = float(d.abs().max().item())
    f_new, g_new = evaluate(t)
    evals, iters = 1, 0
    slope = float(g_new.dot(d).item())
    t_prev, f_prev, g_prev, slope_prev = 0.0, f, g, gtd
    done = False
    bracket = None
    # bracketing phase: grow the step until the interval [t_prev, t] holds a point meeting the conditions
    while iters < max_ls:
        if f_new > f + c1 * t * gtd or (iters > 1 and f_new >= f_prev):
            bracket = _Bracket([t_prev, t], [f_prev, f_new], [g_prev, g_new], [slope_prev, slope])
            break
        if abs(slope) <= -c2 * gtd:
            bracket, done = _Bracket([t], [f_new], [g_new], [slope]), True
            break
        if slope >= 0:  # the slope turned: the minimum lies between the last two points
            bracket = _Bracket([t_prev, t], [f_prev, f_new], [g_prev, g_new], [slope_prev, slope])
            break
        grown = _cubic_minimum(t_prev, f_prev, slope_prev, t, f_new, slope, bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, slope_prev = t, f_new, g_new, slope
        t = grown
        f_new, g_new = evaluate(t)
        evals += 1
        slope = float(g_new.dot(d).item())
        iters += 1
    if iters == max_ls:
        bracket = _Bracket([0.0, t], [f, f_new], [g, g_new], [gtd, slope])
    assert bracket is not None
    # zoom phase: shrink the bracket by cubic interpolation until a point meets the conditions
    low, high = bracket.low_high()
    insufficient = False
    while not done and iters < max_ls:
        if abs(bracket.t[1] - bracket.t[0]) * d_norm < tolerance_change:
            break
        t = _cubic_minimum(bracket.t[0], bracket.f[0], bracket.gtd[0], bracket.t[1], bracket.f[1], bracket.gtd[1])
        top, bottom = max(bracket.t), min(bracket.t)
        margin = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < margin:
            # too close to an end: move away from it, unless the last point was already not close
            if insufficient or t >= top or t <= bottom:
                t = top - margin if abs(t - top) < abs(t - bottom) else bottom + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evals += 1
        slope = float(g_new.dot(d).item())
        iters += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket.f[low]:
            bracket.set(high, t, f_new, g_new, slope)
            low, high = bracket.low_high()
        else:
            if abs(slope) <= -c2 * gtd:
                done = True
            elif slope * (bracket.t[high] - bracket.t[low]) >= 0:
                bracket.set(high, bracket.t[low], bracket.f[low], bracket.g[low], bracket.gtd[low])
            bracket.set(low, t, f_new, g_new, slope)
    return bracket.f[low], bracket.g[low], bracket.t[low], evals


class LBFGS(Optimizer):
    """Limited-memory BFGS (torch's LBFGS): `step(closure)` runs up to `max_iter` iterations.

    One parameter group only; `closure()` must zero the gradients, compute the loss, call `backward()`
    and return the loss.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise RuntimeError(f"only 'strong_wolfe' is supported as line_search_fn, got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _flat_params(self) -> Tensor:
        return cat([p.reshape(-1) for p in self._params]).realize()

    def _flat_grad(self) -> Tensor:
        views = [p.zeros_like().reshape(-1) if p.grad is None else p.grad.to(p.dtype).reshape(-1)
                 for p in self._params]
        return cat(views).realize()

    def _set_params(self, flat: Tensor) -> None:
        bind(self._params, flat.realize())

    def _evaluate_at(self, closure: Callable[[], Any], x: Tensor, d: Tensor, t: float) -> tuple[float, Tensor]:
        """Loss and gradient at x + t d; the parameters return to x afterwards."""
        self._set_params(x + d * t)
        loss = float(closure())
        grad = self._flat_grad()
        self._set_params(x)
        return loss, grad

    @staticmethod
    def _direction(flat_grad: Tensor, old_dirs: list[Tensor], old_stps: list[Tensor], ro: list[Tensor],
                   h_diag: Tensor | float) -> Tensor:
        """-H g by the two-loop recursion over the history."""
        q = -flat_grad
        al: list[Tensor] = [flat_grad] * len(old_dirs)
        # realized each round, as torch updates in place: a lazy chain would grow with the history, and
        # every length would be a new graph to plan and compile
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = (old_stps[i].dot(q) * ro[i]).realize()
            q = (q - old_dirs[i] * al[i]).realize()
        r = (q * h_diag).realize()
        for i in range(len(old_dirs)):
            beta = old_dirs[i].dot(r) * ro[i]
            r = (r + old_stps[i] * (al[i] - beta)).realize()
        return r

    @no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Minimize the closure's loss for up to max_iter iterations; returns the first loss."""
        if closure is None:
            raise Error("LBFGS.step needs a closure that recomputes the loss and its gradients")
        if is_capturing():
            raise JitError("LBFGS.step cannot run inside fg.jit: its control flow reads values back to the host")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        evaluate = enable_grad()(closure)
        state = self.state.setdefault(id(self._params[0]), {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        first_loss = evaluate()
        loss = float(first_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if float(flat_grad.abs().max().item()) <= tolerance_grad:
            return first_loss
        d, t, old_dirs, old_stps, ro, h_diag, prev_flat_grad, prev_loss = (state.get(k) for k in _STATE_KEYS)
        converged = False
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, old_dirs, old_stps, ro, h_diag = -flat_grad, [], [], [], 1.0
            else:
                y, s = flat_grad - prev_flat_grad, d * t
                ys = y.dot(s).realize()
                if float(ys.item()) > 1e-10:  # keep only pairs that keep the estimate positive definite
                    if len(old_dirs) == group["history_size"]:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y.realize())
                    old_stps.append(s.realize())
                    ro.append((1.0 / ys).realize())
                    h_diag = (ys / y.dot(y)).realize()
                d = self._direction(flat_grad, old_dirs, old_stps, ro, h_diag)
            prev_flat_grad, prev_loss = flat_grad, loss
            if state["n_iter"] == 1:
                # the first step is scaled so its length is at most lr (torch: min(1, 1 / |g|_1) * lr)
                inverse = 1.0 / flat_grad.abs().sum()
                t = float((inverse * lr).item()) if float(inverse.item()) < 1.0 else float(lr)
            else:
                t = float(lr)
            gtd = float(flat_grad.dot(d).item())
            if gtd > -tolerance_change:  # not a descent direction
                break
            step_evals = 0
            if group["line_search_fn"] is not None:
                x = self._flat_params()
                loss, flat_grad, t, step_evals = _strong_wolfe(
                    lambda step: self._evaluate_at(evaluate, x, d, step), d, t, loss, flat_grad, gtd,
                    max_ls=max_eval - evals)
                self._set_params(x + d * t)
                converged = float(flat_grad.abs().max().item()) <= tolerance_grad
            else:
                self._set_params(self._flat_params() + d * t)
                if n_iter != max_iter:
                    loss = float(evaluate())
                    flat_grad = self._flat_grad()
                    converged = float(flat_grad.abs().max().item()) <= tolerance_grad
                    step_evals = 1
            evals += step_evals
            state["func_evals"] += step_evals
            if n_iter == max_iter or evals >= max_eval or converged:
                break
            if float((d * t).abs().max().item()) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break
        state.update(zip(_STATE_KEYS, (d, t, old_dirs, old_stps, ro, h_diag, prev_flat_grad, prev_loss)))
        return first_loss

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: the whole state under the first parameter's index, with its history lists."""
        group = self.param_groups[0]
        entry = {k: v for k, v in group.items() if k != "params" and not k.startswith("_")}
        entry["params"] = list(range(len(self._params)))
        state = self.state.get(id(self._params[0]))
        return {"state": {} if state is None else {0: _copy_state(state)}, "param_groups": [entry]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict(); everything is checked first, so a bad one raises StateDictError and changes nothing."""
        params = check_groups(state_dict, self.param_groups)
        numel = sum(p.numel() for p in self._params)
        check_state(state_dict["state"], params, lambda where, key, value, p: _check_entry(where, key, value, numel))
        if set(state_dict["state"]) - {0}:
            raise StateDictError(f"L-BFGS keeps its state under parameter 0, got indices {sorted(state_dict['state'])}")
        groups = state_dict["param_groups"]
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
        saved = state_dict["state"].get(0)
        self.state = {} if saved is None else {id(self._params[0]): _copy_state(saved)}


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy whose history lists are not shared (steps append to and pop from them)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in state.items()}


def _check_entry(where: str, key: str, value: Any, numel: int) -> None:
    """A saved L-BFGS entry: flat vectors over all parameters (alone or as history lists) or numbers."""
    if key in ("func_evals", "n_iter"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise StateDictError(f"{where}: expected an int count, got {value!r}")
    elif key in ("d", "prev_flat_grad", "old_dirs", "old_stps"):
        for v in value if key.startswith("old_") and isinstance(value, list) else [value]:
            if not isinstance(v, Tensor) or tuple(v.shape) != (numel,) or not v.dtype.is_floating_point:
                got = f"shape {tuple(v.shape)} {v.dtype.name}" if isinstance(v, Tensor) else type(v).__name__
                raise StateDictError(f"{where}: expected floating vectors of shape ({numel},), got {got}")
    elif key in ("t", "H_diag", "prev_loss", "ro"):
        for v in value if key == "ro" and isinstance(value, list) else [value]:
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)) and \
                    not (isinstance(v, Tensor) and v.numel() == 1 and v.dtype.is_floating_point):
                raise StateDictError(f"{where}: expected a number, got {v!r}")
    else:
        known = _STATE_KEYS + ("func_evals", "n_iter")
        raise StateDictError(f"{where}: not an L-BFGS state key (expected one of {known})")
