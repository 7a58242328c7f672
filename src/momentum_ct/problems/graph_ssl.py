"""Graph-based semi-supervised classification (Kovachki & Stuart 2019, after Bertozzi et al.): a latent
labelling ``u`` (nodes x classes) with a graph-Laplacian Gaussian prior, observed (one-hot, noise variance
``noise``) on a few labelled nodes.

The graph: scikit-learn's symmetrised k-nearest-neighbour graph of the points with Gaussian weights
``exp(-|x_i - x_j|^2 / (2 s^2))`` (``s`` the median neighbour distance), its normalised Laplacian ``L``; the
prior ``u[:, c] ~ N(0, C)``, ``C = (L + tau^2 I)^-alpha``, independent across classes. The parameters are the
whitened ``xi`` (``u = C^{1/2} xi``, ``xi ~ N(0, I)``), so an ensemble drawn as ``x0 + z`` (``x0 = 0``, spread 1)
is a draw from the prior, and the forward map ``G(xi) = (C^{1/2} xi)[labelled]`` is linear. Training data: the
labelled nodes; test data: the others. Predicted class: argmax over classes of ``u``.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch.nn import functional as F

from .base import Problem

DATASETS = ("moons", "digits")
MAX_NODES = 5000  # the prior's square root is nodes x nodes, dense


def _points(dataset: str, n_nodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits, make_moons

    if dataset == "moons":
        return make_moons(n_samples=n_nodes, noise=0.1, random_state=seed)
    data = load_digits()
    x = (data.data - data.data.mean(0)) / data.data.std(0).clip(1e-8)
    return x, data.target


def laplacian(x: np.ndarray, n_neighbours: int) -> np.ndarray:
    """Normalised Laplacian ``I - D^-1/2 W D^-1/2`` of the symmetrised kNN graph with Gaussian weights."""
    from sklearn.neighbors import kneighbors_graph

    dist = kneighbors_graph(x, n_neighbours, mode="distance").toarray()
    dist = np.maximum(dist, dist.T)  # symmetrise: an edge where either point is among the other's neighbours
    scale = np.median(dist[dist > 0])
    w = np.where(dist > 0, np.exp(-dist**2 / (2 * scale**2)), 0.0)
    d = 1.0 / np.sqrt(w.sum(1))
    return np.eye(len(x)) - d[:, None] * w * d[None, :]


def prior_sqrt(lap: np.ndarray, tau: float, alpha: float) -> np.ndarray:
    """``C^{1/2} = (L + tau^2 I)^{-alpha/2}`` through the eigendecomposition of the symmetric ``L``."""
    lam, v = np.linalg.eigh(lap)
    return (v * np.clip(lam + tau**2, 1e-12, None) ** (-alpha / 2)) @ v.T


def _latent(sqrt_c: torch.Tensor, n_classes: int, xs: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """``u[nodes]`` (points x nodes x classes) of a stack of whitened parameters ``xs`` (points x N K)."""
    # one (nodes x N) by (N x points K) product; a broadcast matmul would copy the rows once per point
    out = torch.tensordot(sqrt_c[nodes], xs.view(xs.shape[0], sqrt_c.shape[0], n_classes), dims=([1], [1]))
    return out.permute(1, 0, 2)


def forward_map(sqrt_c, n_classes, xs, data, per_run: bool = False):
    nodes, labels = data
    if per_run:
        out = torch.stack([_latent(sqrt_c, n_classes, x[None], n)[0] for x, n in zip(xs, nodes)])
    else:
        out = _latent(sqrt_c, n_classes, xs, nodes)
    y = F.one_hot(labels, n_classes).to(xs.dtype)
    return out.reshape(xs.shape[0], -1), y.reshape(*y.shape[:-2], -1)


def loss(sqrt_c, n_classes, noise, x, data):
    """Negative log posterior density of ``xi`` up to a constant: the misfit on ``data`` plus ``|xi|^2 / 2``."""
    out, y = forward_map(sqrt_c, n_classes, x[None], data)
    return 0.5 * ((out[0] - y) ** 2).sum() / noise + 0.5 * (x**2).sum()


def grad(sqrt_c, n_classes, noise, x, data):
    """Closed form of ``loss``'s gradient: ``A^T (A xi - y) / noise + xi``."""
    nodes, labels = data
    residual = _latent(sqrt_c, n_classes, x[None], nodes)[0] - F.one_hot(labels, n_classes).to(x.dtype)
    return (sqrt_c[nodes].T @ residual).reshape(-1) / noise + x


def accuracy(sqrt_c, n_classes, x, data):
    nodes, labels = data
    return (_latent(sqrt_c, n_classes, x[None], nodes)[0].argmax(-1) == labels).to(x.dtype).mean()


@functools.lru_cache(maxsize=4)
def _graph(dataset: str, n_nodes: int, seed: int, n_neighbours: int, tau: float, alpha: float):
    """Points, labels and the prior's square root (cached: its eigendecomposition is the problem's cost, and a
    sweep's seeds of the digits graph share it). Nothing writes into the returned arrays."""
    x, labels = _points(dataset, n_nodes, seed)
    if not (1 <= n_neighbours < len(x)):
        raise ValueError(f"graph_ssl: n_neighbours must lie in [1, {len(x) - 1}], got {n_neighbours}")
    return x, labels, torch.tensor(prior_sqrt(laplacian(x, n_neighbours), tau, alpha), dtype=torch.float64)


def make_graph_ssl(*, seed: int = 0, dataset: str = "moons", n_nodes: int = 400, n_labels: int = 10,
                   n_neighbours: int = 10, tau: float = 0.1, alpha: float = 2.0, noise: float = 0.01) -> Problem:
    """``seed`` picks the labelled nodes (and the moons' points); ``n_nodes`` applies to moons (digits: all 1,797)."""
    if dataset not in DATASETS:
        raise ValueError(f"graph_ssl: dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if not (10 <= n_nodes <= MAX_NODES):
        raise ValueError(f"graph_ssl: n_nodes must lie in [10, {MAX_NODES}], got {n_nodes}")
    for key, value in dict(tau=tau, alpha=alpha, noise=noise).items():
        if not value > 0:
            raise ValueError(f"graph_ssl: {key} must be positive, got {value}")
    # the digits' graph is the same for every seed; the moons' points are drawn with the seed
    x, labels, sqrt_c = _graph(dataset, n_nodes, seed if dataset == "moons" else 0, n_neighbours, tau, alpha)
    if not (1 <= n_labels < len(x)):
        raise ValueError(f"graph_ssl: n_labels must lie in [1, {len(x) - 1}], got {n_labels}")
    n_classes = int(labels.max()) + 1
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(5000 + seed))
    labels = torch.as_tensor(labels, dtype=torch.long)
    train, test = (perm[:n_labels], labels[perm[:n_labels]]), (perm[n_labels:], labels[perm[n_labels:]])
    return Problem(
        name="graph_ssl",
        options=dict(seed=seed, dataset=dataset, n_nodes=len(x), n_labels=n_labels, n_neighbours=n_neighbours,
                     tau=tau, alpha=alpha, noise=noise),
        x0=torch.zeros(len(x) * n_classes, dtype=torch.float64),
        loss=functools.partial(loss, sqrt_c, n_classes, noise), grad=functools.partial(grad, sqrt_c, n_classes, noise),
        train_data=train, test_data=test,
        accuracy=functools.partial(accuracy, sqrt_c, n_classes),
        forward_map=functools.partial(forward_map, sqrt_c, n_classes),
        extra=dict(sqrt_c=sqrt_c, n_classes=n_classes, points=x),
        blocks=n_classes,  # xi and the outputs interleave the classes (nodes x classes), independent a priori
    )


def posterior_mean(problem: Problem, noise: float) -> torch.Tensor:
    """The closed-form posterior mean of ``xi`` given the labelled nodes, ``A^T (A A^T + noise I)^-1 y`` with
    ``A`` the linear forward map (labels x parameters), never a parameters x parameters matrix."""
    nodes, labels = problem.train_data
    sqrt_c, n_classes = problem.extra["sqrt_c"], problem.extra["n_classes"]
    rows = sqrt_c[nodes]  # labelled nodes x nodes; A acts per class
    y = F.one_hot(labels, n_classes).to(rows.dtype)
    coef = torch.linalg.solve(rows @ rows.T + noise * torch.eye(len(nodes), dtype=rows.dtype), y)
    return (rows.T @ coef).reshape(-1)
