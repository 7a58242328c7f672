"""What every problem provides: a loss of the flat parameter vector, data, and a start point.

Losses are pure functions of a flat float64 vector ``x`` (and of data: the training set or a mini-batch), so the
same problem serves the functional recurrence, torch.func transforms (grad, vmap, jvp) and
continuous-time integration. Network problems also expose their ``nn.Module`` for Lightning.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

Data = tuple[Tensor, ...]  # a problem's data: tensors with the samples on the leading axis


@dataclass
class Problem:
    """A loss ``f(x) = loss(x, data)`` with its data and start point.

    Attributes:
        name: registry name.
        options: the options it was built with (recorded in metadata).
        x0: start point, flat float64 vector.
        loss: ``loss(x, data) -> scalar``; pure, torch.func compatible.
        train_data: the full training data (tensors), or ``()`` for data-free problems.
        test_data: held-out data, or ``()``.
        accuracy: optional ``accuracy(x, data) -> scalar`` for classifiers.
        module: the network as an ``nn.Module`` (network problems only).
        grad: optional closed-form ``grad(x, data)``; default ``torch.func.grad(loss)``.
        hessian: the constant Hessian of a quadratic loss (closed forms), else ``None``.
        hessian_vector: optional closed-form ``hessian_vector(x, v, data)``, the Hessian of the loss at ``x``
            applied to ``v``; default (and for a quadratic, ``hessian @ v``) in ``hvp``.
        minimiser: known minimiser, else ``None``.
        seed_sets_start_only: ``True`` when the seed changes only ``x0`` (loss, gradient and data are the
            same for every seed), so runs of different seeds can share one instance.
        vectorised: ``True`` when ``loss``, the closed-form ``grad`` and ``hessian_vector`` also take a stack of
            points (runs x dim), with the data shared by all or per run (a leading run axis on every data tensor),
            and return one value, gradient or product per point, so the stacked engine calls them directly
            instead of through ``vmap``.
        stacked_loss: optional ``stacked_loss(xs, data, per_run) -> losses``: the losses of a stack of
            parameter vectors ``xs`` (runs x dim) in one pass; ``per_run`` says whether the data tensors
            carry a leading run axis. Networks provide it where one wide matrix product per layer beats
            ``vmap``; gradients come from autograd.
        forward_map: optional ``forward_map(xs, data, per_run) -> (outputs, y)`` for derivative-free ensemble
            methods: the model outputs ``G(x)`` of a stack of points ``xs`` (points x dim) on ``data``
            (points x outputs, no derivative taken) and the observations ``y`` they are fitted to (``outputs``;
            points x outputs when ``per_run``, the data then carrying a leading point axis).
        point_grad: optional gradient of one point in plain arithmetic, ``point_grad(x, out)`` writing ``grad f(x)``
            into ``out`` (float64 arrays, indexing and scalar operations only), for a small problem without data:
            numba compiles it, and the stacked engine then runs the heavy-ball family in compiled loops
            (``train.compiled``). Its operations must be those of ``grad``, in the same order (tested).
        blocks: the forward map's independent blocks (default 1: none). ``b > 1`` says that parameter ``i``
            and output ``o`` belong to blocks ``i mod b`` and ``o mod b``, and that a block's outputs depend on
            its own parameters only, each block with its own independent prior (``graph_ssl``: the classes).
            Ensemble methods may localise their covariances to the blocks.

    Tensors the loss closes over must be bound with ``functools.partial`` (not captured in a closure),
    so that ``to`` can move them with the rest of the problem.
    """

    name: str
    options: dict[str, Any]
    x0: Tensor
    loss: Callable[[Tensor, Data], Tensor]
    train_data: Data = ()
    test_data: Data = ()
    accuracy: Callable[[Tensor, Data], Tensor] | None = None
    module: nn.Module | None = None
    hessian: Tensor | None = None
    minimiser: Tensor | None = None
    grad: Callable[[Tensor, Data], Tensor] | None = None  # closed form where cheap; tested against autograd
    hessian_vector: Callable[[Tensor, Tensor, Data], Tensor] | None = None  # closed form, same rule
    extra: dict[str, Any] = field(default_factory=dict)
    seed_sets_start_only: bool = False
    vectorised: bool = False
    stacked_loss: Callable[[Tensor, Data, bool], Tensor] | None = None
    forward_map: Callable[[Tensor, Data, bool], tuple[Tensor, Tensor]] | None = None
    point_grad: Callable[[Any, Any], None] | None = None
    blocks: int = 1

    @property
    def dim(self) -> int:
        return self.x0.numel()

    @property
    def n_train(self) -> int:
        return self.train_data[0].shape[0] if self.train_data else 0

    def full_loss(self, x: Tensor) -> Tensor:
        return self.loss(x, self.train_data)

    def gradient(self, x: Tensor, data: Data) -> Tensor:
        if self.grad is not None:
            return self.grad(x, data)
        return torch.func.grad(self.loss)(x, data)

    def full_grad(self, x: Tensor) -> Tensor:
        return self.gradient(x, self.train_data)

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """Hessian-vector product of the full loss: closed form where the problem has one, else
        forward-over-reverse (``jvp`` of the gradient), never a dense Hessian."""
        if self.hessian_vector is not None:
            return self.hessian_vector(x, v, self.train_data)
        if self.hessian is not None:
            return self.hessian @ v
        return torch.func.jvp(self.full_grad, (x,), (v,))[1]

    @property
    def closed_form_hvp(self) -> bool:
        """``True`` when ``hvp`` is a closed form (cheaper than any autodiff transform on a small problem)."""
        return self.hessian_vector is not None or self.hessian is not None

    def evaluate(self, x: Tensor) -> dict[str, float]:
        """Train loss on the full training data and, where there are test data, test loss and accuracy."""
        out = {"loss": float(self.full_loss(x))}
        if self.test_data:
            out["test_loss"] = float(self.loss(x, self.test_data))
            if self.accuracy is not None:
                out["test_accuracy"] = float(self.accuracy(x, self.test_data))
        return out

    def minibatch_indices(self, batch_size: int, generator: torch.Generator):
        """Endless index tensors of mini-batches: a fresh seeded permutation each epoch, last partial mini-batch
        dropped; ``None`` (the full training data) every step when ``batch_size`` covers the training set."""
        n = self.n_train
        if batch_size >= n or n == 0:
            while True:
                yield None
        while True:
            perm = torch.randperm(n, generator=generator)
            for i in range(0, n - batch_size + 1, batch_size):
                yield perm[i : i + batch_size]

    def minibatches(self, batch_size: int, generator: torch.Generator):
        """Endless mini-batches drawn by ``minibatch_indices`` (the one definition of the mini-batch sequence)."""
        for idx in self.minibatch_indices(batch_size, generator):
            yield self.train_data if idx is None else tuple(t[idx.to(t.device)] for t in self.train_data)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Problem":
        """A copy on ``device`` with floating tensors in ``dtype`` (labels keep their integer dtype).

        Moves the start point, data, closed forms, tensors in ``extra`` and tensors bound to the loss,
        gradient or accuracy by ``functools.partial``; the module (kept for its structure: its own
        parameters are never used, ``x`` replaces them) is copied and moved too.
        """
        def move(v):
            if isinstance(v, Tensor):
                return v.to(device=device, dtype=dtype if v.is_floating_point() else None)
            if isinstance(v, tuple):
                return tuple(move(t) for t in v)
            if isinstance(v, functools.partial):
                return functools.partial(v.func, *map(move, v.args), **{k: move(t) for k, t in v.keywords.items()})
            return v

        module = None if self.module is None else copy.deepcopy(self.module).to(device=device, dtype=dtype)
        return dataclasses.replace(
            self, x0=move(self.x0), loss=move(self.loss), train_data=move(self.train_data),
            test_data=move(self.test_data), accuracy=move(self.accuracy), module=module, hessian=move(self.hessian),
            minimiser=move(self.minimiser), grad=move(self.grad), hessian_vector=move(self.hessian_vector),
            forward_map=move(self.forward_map),
            extra={k: move(v) for k, v in self.extra.items()},
        )


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

    def loss(x: Tensor, data: Data) -> Tensor:
        inputs, targets = data
        return criterion(torch.func.functional_call(module, unflatten(x), (inputs,)), targets)

    return loss, x0, unflatten
