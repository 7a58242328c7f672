"""What every problem provides: a loss of the flat parameter vector, data, and a start point.

Losses are pure functions of a flat float64 vector ``x`` (and optionally a mini-batch), so the
same problem serves the functional recurrence, torch.func transforms (grad, vmap, jvp) and
continuous-time integration. Network problems also expose their ``nn.Module`` for Lightning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, ...]


@dataclass
class Problem:
    """A loss ``f(x) = loss(x, data)`` with its data and start point.

    Attributes:
        name: registry name.
        options: the options it was built with (recorded in metadata).
        x0: start point, flat float64 vector.
        loss: ``loss(x, batch) -> scalar``; pure, torch.func compatible.
        train_data: full training batch (tensors), or ``()`` for data-free problems.
        test_data: held-out batch, or ``()``.
        accuracy: optional ``accuracy(x, batch) -> scalar`` for classifiers.
        module: the network as an ``nn.Module`` (network problems only).
        grad: optional closed-form ``grad(x, batch)``; default ``torch.func.grad(loss)``.
        hessian: the constant Hessian of a quadratic loss (closed forms), else ``None``.
        minimiser: known minimiser, else ``None``.
    """

    name: str
    options: dict[str, Any]
    x0: Tensor
    loss: Callable[[Tensor, Batch], Tensor]
    train_data: Batch = ()
    test_data: Batch = ()
    accuracy: Callable[[Tensor, Batch], Tensor] | None = None
    module: nn.Module | None = None
    hessian: Tensor | None = None
    minimiser: Tensor | None = None
    grad: Callable[[Tensor, Batch], Tensor] | None = None  # closed form where cheap; tested against autograd
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.x0.numel()

    @property
    def n_train(self) -> int:
        return self.train_data[0].shape[0] if self.train_data else 0

    def full_loss(self, x: Tensor) -> Tensor:
        return self.loss(x, self.train_data)

    def gradient(self, x: Tensor, batch: Batch) -> Tensor:
        if self.grad is not None:
            return self.grad(x, batch)
        return torch.func.grad(self.loss)(x, batch)

    def full_grad(self, x: Tensor) -> Tensor:
        return self.gradient(x, self.train_data)

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """Hessian-vector product of the full loss (forward-over-reverse, no dense Hessian)."""
        return torch.func.jvp(self.full_grad, (x,), (v,))[1]

    def evaluate(self, x: Tensor) -> dict[str, float]:
        """Full-batch train loss and, where there are test data, test loss and accuracy."""
        out = {"loss": float(self.full_loss(x))}
        if self.test_data:
            out["test_loss"] = float(self.loss(x, self.test_data))
            if self.accuracy is not None:
                out["test_accuracy"] = float(self.accuracy(x, self.test_data))
        return out

    def minibatches(self, batch_size: int, generator: torch.Generator):
        """Endless mini-batches: a fresh seeded permutation each epoch, last partial batch dropped."""
        n = self.n_train
        if batch_size >= n or n == 0:
            while True:
                yield self.train_data
        while True:
            perm = torch.randperm(n, generator=generator)
            for i in range(0, n - batch_size + 1, batch_size):
                idx = perm[i : i + batch_size]
                yield tuple(t[idx] for t in self.train_data)


def flat_module_loss(module: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor]):
    """Turn a module into ``loss(x_flat, (inputs, targets))`` through ``functional_call``.

    Returns ``(loss, x0, unflatten)`` where ``x0`` is the module's current parameters, flattened.
    """
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for _, p in module.named_parameters()]
    sizes = [p.numel() for _, p in module.named_parameters()]
    x0 = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()

    def unflatten(x: Tensor) -> dict[str, Tensor]:
        return {n: c.view(s) for n, c, s in zip(names, torch.split(x, sizes), shapes)}

    def loss(x: Tensor, batch: Batch) -> Tensor:
        inputs, targets = batch
        return criterion(torch.func.functional_call(module, unflatten(x), (inputs,)), targets)

    return loss, x0, unflatten
