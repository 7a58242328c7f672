"""Losses of a stack of networks, one per run, in one pass (for the stacked engine).

``vmap`` of ``functional_call`` over a stack of flat parameter vectors works, but its own
rules pick the layouts: the loss is decomposed per sample and the activations change layout
between forward and backward, which costs more than the matrix products on a CPU. Written for the
stack, every layer is one product over the stack (``bmm``) in a run-major layout ``(runs, samples, width)`` that
forward and backward share, the shared input is expanded (not copied) across runs, and the
cross-entropy is one call with the classes on the middle axis. Only the forward pass is written
here: autograd differentiates it, so the gradients are those of the same loss.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class StackedSequentialLoss:
    """``loss(xs, data, per_run=False) -> (runs,)`` for an ``nn.Sequential`` of ``nn.Linear`` layers and
    parameter-free modules (activations); ``xs`` holds flat vectors in ``named_parameters`` order.

    ``per_run``: the data tensors carry a leading run axis (mini-batches that differ between runs);
    otherwise every run sees the same data. ``width`` is the widest layer output (callers size chunks
    of runs with it).
    """

    def __init__(self, layers: list, sizes: list[int], criterion: Callable[..., Tensor]):
        self.layers, self.sizes, self.criterion = layers, sizes, criterion
        self.width = max(spec[0] for kind, spec in layers if kind == "linear")

    def outputs(self, xs: Tensor, inputs: Tensor, per_run: bool = False, outputs_first: bool = False) -> Tensor:
        """The network outputs of every run on ``inputs``: ``(runs, samples, out)``, or ``(runs, out, samples)``
        with ``outputs_first`` (contiguous either way)."""
        n_runs = xs.shape[0]
        chunks = iter(torch.split(xs, self.sizes, dim=1))
        h, shared = inputs, not per_run  # shared: h is (samples, width), else (runs, samples, width)
        last = len(self.layers) - 1
        for i, (kind, spec) in enumerate(self.layers):
            if kind == "map":
                h = spec(h)
                continue
            out, inp, has_bias = spec
            w = next(chunks).view(n_runs, out, inp)
            if shared:
                h = h.expand(n_runs, *h.shape)  # a view: the stacked product reads the input once per run
                shared = False
            if outputs_first and i == last:  # W h^T: the outputs land on the middle axis without a copy
                h = (torch.baddbmm(next(chunks).unsqueeze(2), w, h.transpose(1, 2)) if has_bias
                     else torch.bmm(w, h.transpose(1, 2)))
                return h
            w = w.transpose(1, 2)
            h = torch.baddbmm(next(chunks).unsqueeze(1), h, w) if has_bias else torch.bmm(h, w)
        if shared:  # no linear layer: every run sees the same output
            h = h.expand(n_runs, *h.shape)
        return h.transpose(1, 2).contiguous() if outputs_first else h

    def __call__(self, xs: Tensor, data, per_run: bool = False) -> Tensor:
        inputs, targets = data
        n_runs = xs.shape[0]
        h = self.outputs(xs, inputs, per_run)
        t = targets if per_run else targets.expand(n_runs, *targets.shape)
        if self.criterion is F.cross_entropy and t.dim() == 2:
            # classes on the middle axis: the log-softmax runs along samples, not along 10 classes
            per_sample = F.cross_entropy(h.transpose(1, 2), t, reduction="none")
        else:
            per_sample = self.criterion(h.reshape(-1, h.shape[-1]), t.reshape(-1, *t.shape[2:]), reduction="none")
        return per_sample.reshape(n_runs, -1).mean(1)


def stacked_sequential_loss(module: nn.Module, criterion: Callable[..., Tensor]) -> StackedSequentialLoss | None:
    """The stacked loss of ``criterion(module(inputs), targets)``, or ``None`` where it does not apply
    (callers then fall back to ``vmap``).

    ``criterion(logits, targets, reduction="none")`` must give per-sample losses whose mean is the
    loss (``cross_entropy``, ``mse_loss``).
    """
    if not isinstance(module, nn.Sequential):
        return None
    layers: list = []
    sizes: list[int] = []
    for layer in module:
        if isinstance(layer, nn.Linear):
            layers.append(("linear", (layer.out_features, layer.in_features, layer.bias is not None)))
            sizes.append(layer.weight.numel())
            if layer.bias is not None:
                sizes.append(layer.bias.numel())
        elif next(layer.parameters(), None) is None and next(layer.buffers(), None) is None:
            layers.append(("map", layer))
        else:
            return None
    if not any(kind == "linear" for kind, _ in layers) or sum(sizes) != sum(p.numel() for p in module.parameters()):
        return None
    return StackedSequentialLoss(layers, sizes, criterion)


def softmax_forward_map(stacked: StackedSequentialLoss, xs: Tensor, data, per_run: bool = False):
    """A classifier as a forward map for ensemble Kalman inversion (Kovachki & Stuart 2019): ``G(u)`` the
    class probabilities on the samples, flattened (``points x classes * samples``), and the observations
    ``y`` the one-hot labels, flattened the same way (``classes * samples``; ``points x ...`` when
    ``per_run``). Probabilities rather than logits: the one-hot labels are reachable, so the misfit
    ``|y - G(u)|`` has a finite minimiser."""
    inputs, targets = data
    # classes on the middle axis, (points, classes, samples): a softmax over a short last axis is ten times
    # slower on a CPU than one whose reductions run along the contiguous samples; Gamma = noise I, so the
    # order of the outputs is free as long as y follows it
    probs = torch.softmax(stacked.outputs(xs, inputs, per_run, outputs_first=True), dim=1)
    y = F.one_hot(targets, probs.shape[1]).to(probs.dtype).transpose(-1, -2)
    return probs.reshape(xs.shape[0], -1), y.reshape(*y.shape[:-2], -1)
