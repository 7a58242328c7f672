"""The recurrence as a ``torch.optim.Optimizer`` for Lightning and plain training loops.

Unlike ``torch.optim.SGD(nesterov=True)``, the parameter tensors always hold ``x_k`` of the
recurrence, never the look-ahead point: ``step`` moves them to the look-ahead point, evaluates the
closure there (for NAG a closure is required), and moves them on to ``x_{k+1}``.

It serves the heavy-ball family only; ``for_method`` takes ``(lr, momentum, lookahead)`` from a member.
"""
from __future__ import annotations

from typing import Any

import torch

from .heavy_ball import check_hyperparameters


class MomentumRecurrence(torch.optim.Optimizer):
    """``x_{k+1} = x_k + lam (x_k - x_{k-1}) - lr grad f(x_k + a (x_k - x_{k-1}))``.

    Args:
        params: parameters or parameter groups.
        lr: the step size (``h``, rescaled to ``h / (1 - lam)`` for rescaled GD).
        momentum: ``lam`` in [0, 1).
        lookahead: ``a``; 0 for heavy ball, ``momentum`` for Nesterov.
    """

    def __init__(self, params, *, lr: float, momentum: float = 0.0, lookahead: float = 0.0):
        check_hyperparameters(lr, momentum)
        if not (0.0 <= lookahead < 1.0):
            raise ValueError(f"lookahead a must lie in [0, 1), got {lookahead}")
        super().__init__(params, dict(lr=lr, momentum=momentum, lookahead=lookahead))

    @classmethod
    def for_method(cls, params, method: Any, *, h: float, lam: float, **hyperparameters: float) -> "MomentumRecurrence":
        """The optimizer of a heavy-ball family member (a name, label, ``Method`` or ``MethodSpec``) at nominal
        ``h`` and ``lam``: the member's ``coefficients`` give ``(lr, momentum, lookahead)``.

        Raises:
            ConfigError: the method is not in the heavy-ball family, or bad hyperparameters.
        """
        from .methods import coefficients, resolve_method

        step_size, momentum, a = coefficients(resolve_method(method, hyperparameters), h, lam)
        return cls(params, lr=step_size, momentum=momentum, lookahead=a)

    def _previous(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "previous" not in state:  # x_{-1} = x_0
            state["previous"] = p.detach().clone()
        return state["previous"]

    @torch.no_grad()
    def step(self, closure=None):
        needs_lookahead = any(g["lookahead"] != 0.0 for g in self.param_groups)
        if needs_lookahead and closure is None:
            raise RuntimeError("Nesterov (lookahead != 0) needs a closure: the gradient is taken at the look-ahead point")
        current = {}
        if needs_lookahead:
            for group in self.param_groups:
                for p in group["params"]:
                    current[p] = p.detach().clone()
                    p.add_(p - self._previous(p), alpha=group["lookahead"])
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, lam = group["lr"], group["momentum"]
            for p in group["params"]:
                x = current.get(p, p.detach().clone())
                prev = self._previous(p)
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                p.copy_(x + lam * (x - prev) - lr * grad)
                prev.copy_(x)
        return loss
