"""A small MLP classifier on scikit-learn's bundled digits (8x8 images, 10 classes; offline).

Inputs are standardised with training-set statistics; the train/test split is fixed by
``split_seed``; ``seed`` sets the initial weights. ``tanh`` keeps the loss smooth, which the
order-of-convergence measurements need (ReLU kinks break the Taylor expansions).
"""
from __future__ import annotations

import functools
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Problem, flat_module_loss
from .stacked import softmax_forward_map, stacked_sequential_loss


# Widest hidden layer accepted: the stacked engine holds runs x samples x width activations.
MAX_WIDTH = 4096


def load_digits_tensors(split_seed: int = 0, test_fraction: float = 0.2):
    """``((x_train, y_train), (x_test, y_test))``, standardised; fresh tensors on every call."""
    (x_train, y_train), (x_test, y_test) = _load_digits(split_seed, test_fraction)
    return (x_train.clone(), y_train.clone()), (x_test.clone(), y_test.clone())


def bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images (1797 x 64, float64) and labels.

    Kept as an ``.npz`` per scikit-learn version in the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``,
    folder ``momentum_ct``): reading it takes milliseconds, importing scikit-learn seconds, and every process
    that builds a digits problem (each validation of a config, each job) would pay them. Where the cache
    cannot be written, the data come from scikit-learn every time.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "momentum_ct"
    path = cache / f"digits-sklearn-{version('scikit-learn')}.npz"
    try:
        with np.load(path) as stored:
            return stored["data"], stored["target"]
    except (OSError, KeyError, ValueError):
        pass
    from sklearn.datasets import load_digits

    data = load_digits()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, data=data.data, target=data.target)
        os.replace(tmp.name, path)  # whole or not at all, whatever other processes do meanwhile
    except OSError:
        pass
    return data.data, data.target


@functools.lru_cache(maxsize=8)  # validation, sizing and training each build the problem: read the data once
def _load_digits(split_seed: int, test_fraction: float):
    images, labels = bundled_digits()
    x = torch.tensor(images, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-8)
    x = (x - mean) / std
    return (x[train], y[train]), (x[test], y[test])


def build_mlp(n_in: int, hidden: list[int], n_out: int, seed: int) -> nn.Module:
    """Default ``nn.Linear`` init, drawn in float64 from ``seed`` whatever the global dtype and RNG state."""
    # nn.Linear draws from the global generator: fork it so the caller's random stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers, width = [], n_in
        for w in hidden:
            layers += [nn.Linear(width, w, dtype=torch.float64), nn.Tanh()]
            width = w
        layers.append(nn.Linear(width, n_out, dtype=torch.float64))
    return nn.Sequential(*layers)


def make_digits_mlp(*, seed: int = 0, hidden: list[int] | tuple[int, ...] = (32,), split_seed: int = 0,
                    test_fraction: float = 0.2, n_train: int | None = None) -> Problem:
    hidden = list(hidden)
    if not hidden or any(w < 1 for w in hidden) or any(w > MAX_WIDTH for w in hidden):
        raise ValueError(f"digits_mlp: hidden must be a non-empty list of widths in [1, {MAX_WIDTH}], got {hidden}")
    if not (0.0 < test_fraction < 1.0):
        raise ValueError(f"digits_mlp: test_fraction must lie in (0, 1), got {test_fraction}")
    train, test = load_digits_tensors(split_seed, test_fraction)
    if n_train is not None:
        if n_train < 1:
            raise ValueError(f"digits_mlp: n_train must be >= 1, got {n_train}")
        train = tuple(t[:n_train] for t in train)
    module = build_mlp(train[0].shape[1], hidden, 10, seed)
    criterion = nn.functional.cross_entropy
    loss, x0, unflatten = flat_module_loss(module, criterion)

    def accuracy(x, data):
        inputs, targets = data
        logits = torch.func.functional_call(module, unflatten(x), (inputs,))
        return (logits.argmax(-1) == targets).to(torch.float64).mean()

    stacked = stacked_sequential_loss(module, criterion)
    return Problem(
        name="digits_mlp",
        options=dict(seed=seed, hidden=hidden, split_seed=split_seed, test_fraction=test_fraction, n_train=n_train),
        x0=x0, loss=loss, train_data=train, test_data=test, accuracy=accuracy, module=module,
        extra=dict(unflatten=unflatten, criterion=criterion),
        seed_sets_start_only=True,  # the seed draws the initial weights; data and split are fixed by split_seed
        stacked_loss=stacked,
        forward_map=functools.partial(softmax_forward_map, stacked),
    )
