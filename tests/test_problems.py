"""Problems: closed-form gradients and Hessian-vector products, data, registry errors, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from momentum_ct.errors import ConfigError
from momentum_ct.problems import PROBLEMS, make_problem, problem_options
from momentum_ct.problems.digits_mlp import _load_digits, load_digits_tensors

from problems_exact import QUADRATIC_OPTIONS

pytestmark = pytest.mark.usefixtures("single_torch_thread")

# Small instances of every registered problem (kept small so dense Hessians are cheap).
SMALL = {
    "quadratic": dict(QUADRATIC_OPTIONS),
    "toy2d": {},
    "regression": dict(n_samples=40, dim=6, n_test=10),
    "digits_mlp": dict(hidden=[3], n_train=60),
    "graph_ssl": dict(n_nodes=30, n_labels=5, n_neighbours=5),
    "lms": dict(eigenvalues=[1.0, 0.5, 0.2], n_inputs=8, n_noise=2),
    "digits_late": dict(hidden=[2], n_train=100, weight_decay=0.1),
}


def test_every_registered_problem_has_a_small_instance_here():
    assert set(SMALL) == set(PROBLEMS), "add the new problem to SMALL so the tests below cover it"


def points(problem, n=3, seed=0):
    """``x0`` and a few seeded points around it."""
    gen = torch.Generator().manual_seed(seed)
    return [problem.x0] + [problem.x0 + 0.3 * torch.randn(problem.dim, generator=gen, dtype=torch.float64)
                           for _ in range(n)]


@pytest.mark.parametrize("name", [n for n in sorted(SMALL) if not n.startswith("digits")])
def test_closed_form_gradient_equals_autograd(name):
    problem = make_problem(name, seed=0, **SMALL[name])
    assert problem.grad is not None, f"{name} is expected to provide a closed-form gradient"
    data_tuples = [problem.train_data]
    if problem.train_data:
        data_tuples.append(tuple(t[:7] for t in problem.train_data))  # a mini-batch as well
    for x in points(problem):
        for data in data_tuples:
            auto = torch.func.grad(problem.loss)(x, data)
            closed = problem.grad(x, data)
            torch.testing.assert_close(closed, auto, rtol=1e-12, atol=1e-13, msg=f"{name}: gradient at {x}")


@pytest.mark.parametrize("name", [n for n in sorted(SMALL) if make_problem(n, seed=0, **SMALL[n]).vectorised])
def test_vectorised_closed_forms_take_stacks_with_shared_and_per_run_data(name):
    """``Problem.vectorised``: loss, gradient and Hessian-vector product of a stack of points, with the data shared
    by all or per run (each run its own mini-batch), equal the values point by point."""
    problem = make_problem(name, seed=0, **SMALL[name])
    xs = torch.stack(points(problem))
    gen = torch.Generator().manual_seed(3)
    vs = torch.randn(xs.shape, generator=gen, dtype=torch.float64)
    data = problem.train_data
    per_run = (tuple(torch.stack([t[i:i + 3] for i in range(len(xs))]) for t in data) if data else None)
    cases = [(data, [data] * len(xs))] + ([(per_run, [tuple(t[i] for t in per_run) for i in range(len(xs))])]
                                          if data else [])
    for stacked, each in cases:
        losses = torch.stack([problem.loss(x, d) for x, d in zip(xs, each)])
        torch.testing.assert_close(problem.loss(xs, stacked), losses, rtol=1e-14, atol=1e-15)
        grads = torch.stack([problem.grad(x, d) for x, d in zip(xs, each)])
        torch.testing.assert_close(problem.grad(xs, stacked), grads, rtol=1e-13, atol=1e-14)
        if problem.hessian_vector is not None:
            torch.testing.assert_close(problem.hessian_vector(xs, vs, stacked),
                                       torch.stack([problem.hessian_vector(x, v, d) for x, v, d in zip(xs, vs, each)]),
                                       rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_hvp_equals_dense_hessian_product(name):
    problem = make_problem(name, seed=0, **SMALL[name])
    gen = torch.Generator().manual_seed(1)
    for x in points(problem, n=1):
        dense = torch.autograd.functional.hessian(problem.full_loss, x)
        torch.testing.assert_close(dense, dense.T, rtol=1e-10, atol=1e-12)
        for _ in range(2):
            v = torch.randn(problem.dim, generator=gen, dtype=torch.float64)
            torch.testing.assert_close(problem.hvp(x, v), dense @ v, rtol=1e-10, atol=1e-12,
                                       msg=f"{name}: hvp against dense Hessian")
        if problem.hessian is not None:
            torch.testing.assert_close(problem.hessian, dense, rtol=1e-12, atol=1e-13,
                                       msg=f"{name}: stored Hessian against autograd")


def test_quadratic_spectrum_and_minimiser():
    problem = make_problem("quadratic", seed=0, dim=6, condition=20.0, lipschitz=3.0)
    eig = torch.linalg.eigvalsh(problem.hessian)
    torch.testing.assert_close(eig.max(), torch.tensor(3.0, dtype=torch.float64))
    torch.testing.assert_close(eig.max() / eig.min(), torch.tensor(20.0, dtype=torch.float64))
    assert float(problem.full_loss(problem.minimiser)) == pytest.approx(0.0, abs=1e-15)
    assert float(torch.linalg.vector_norm(problem.full_grad(problem.minimiser))) < 1e-14


def test_toy2d_minimiser_and_saddle():
    problem = make_problem("toy2d")
    for m in ([1.0, 0.5], [-1.0, 0.5], [0.0, 0.0]):
        g = problem.full_grad(torch.tensor(m, dtype=torch.float64))
        assert float(torch.linalg.vector_norm(g)) == 0.0, m
    assert float(problem.full_loss(problem.minimiser)) == 0.0


def test_regression_minimiser_is_least_squares_solution():
    problem = make_problem("regression", seed=0, **SMALL["regression"])
    assert float(torch.linalg.vector_norm(problem.full_grad(problem.minimiser))) < 1e-12


# --- digits data ----------------------------------------------------------------------------------


def test_digits_standardised_with_training_statistics():
    (x_train, y_train), (x_test, y_test) = load_digits_tensors(split_seed=0)
    assert x_train.dtype == x_test.dtype == torch.float64
    assert x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797
    assert len(x_test) == round(0.2 * 1797)
    mean, std = x_train.mean(0), x_train.std(0)
    varying = std > 0  # a few border pixels are always 0
    assert int(varying.sum()) > 50
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-12, rtol=0)
    torch.testing.assert_close(std[varying], torch.ones_like(std[varying]), atol=1e-12, rtol=0)
    assert torch.all(x_train[:, ~varying] == 0)
    # the test set is transformed with the training statistics, not its own
    assert float(x_test.mean(0).abs().max()) > 1e-3
    assert set(y_train.tolist()) == set(y_test.tolist()) == set(range(10))


def test_digits_split_is_fixed_by_split_seed():
    (a_train, _), (a_test, a_y) = load_digits_tensors(split_seed=0)
    (b_train, _), (b_test, b_y) = _load_digits.__wrapped__(0, 0.2)  # read again, not from the cache
    assert torch.equal(a_test, b_test) and torch.equal(a_y, b_y) and torch.equal(a_train, b_train)
    (_, _), (c_test, c_y) = load_digits_tensors(split_seed=1)
    assert not torch.equal(a_y, c_y)
    # train and test are disjoint: no image appears in both
    from sklearn.datasets import load_digits

    n_images = len(load_digits().target)
    problem = make_problem("digits_mlp", seed=0, hidden=[3])
    assert problem.n_train + len(problem.test_data[0]) == n_images
    train_rows = {tuple(r) for r in problem.train_data[0].tolist()}
    test_rows = {tuple(r) for r in problem.test_data[0].tolist()}
    assert len(train_rows) == problem.n_train and not train_rows & test_rows


def test_digits_n_train_takes_a_prefix_of_the_fixed_split():
    full = make_problem("digits_mlp", seed=0, hidden=[3])
    small = make_problem("digits_mlp", seed=0, hidden=[3], n_train=60)
    assert small.n_train == 60
    assert torch.equal(small.train_data[0], full.train_data[0][:60])
    assert torch.equal(small.test_data[0], full.test_data[0])
    assert torch.equal(small.x0, full.x0)


def test_digits_seed_sets_the_weights_only():
    a = make_problem("digits_mlp", seed=0, hidden=[3], n_train=60)
    b = make_problem("digits_mlp", seed=1, hidden=[3], n_train=60)
    assert not torch.equal(a.x0, b.x0)
    assert torch.equal(a.train_data[0], b.train_data[0])


# --- registry errors ------------------------------------------------------------------------------


def test_unknown_problem_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        make_problem("rosenbrock")
    message = str(info.value)
    assert "unknown problem 'rosenbrock'" in message
    assert f"valid problems: {', '.join(sorted(PROBLEMS))}" in message


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unknown_option_lists_the_valid_ones(name):
    with pytest.raises(ConfigError) as info:
        make_problem(name, no_such_option=1)
    message = str(info.value)
    assert "no_such_option" in message and name in message
    valid = problem_options(name)
    assert valid and f"valid options: {', '.join(valid)}" in message


@pytest.mark.parametrize("name,options,match", [
    ("quadratic", dict(dim=0), "dim"),
    ("quadratic", dict(condition=0.5), "condition"),
    ("quadratic", dict(lipschitz=-1.0), "lipschitz"),
    ("toy2d", dict(start=(1.0, 2.0, 3.0)), "start"),
    ("toy2d", dict(jitter=-0.1), "jitter"),
    ("regression", dict(noise=-1.0), "noise"),
    ("regression", dict(n_samples=0), "n_samples"),
    ("digits_mlp", dict(hidden=[]), "hidden"),
    ("digits_mlp", dict(hidden=[8, 0]), "hidden"),
    ("digits_mlp", dict(test_fraction=1.0), "test_fraction"),
    ("digits_mlp", dict(n_train=0), "n_train"),
])
def test_bad_option_values_raise_config_error(name, options, match):
    with pytest.raises(ConfigError, match=match):
        make_problem(name, **options)


def test_problem_options_of_unknown_problem():
    with pytest.raises(ConfigError, match="valid problems"):
        problem_options("nope")


# --- determinism ----------------------------------------------------------------------------------


def fingerprint(problem):
    """Everything that determines a run: start point, data and the loss and gradient at a few points."""
    out = {"x0": problem.x0, "loss": problem.full_loss(problem.x0).reshape(1)}
    for i, x in enumerate(points(problem, n=2)):
        out[f"grad{i}"] = problem.full_grad(x)
    for i, t in enumerate(problem.train_data + problem.test_data):
        out[f"data{i}"] = t
    return out


def assert_same(a, b, what):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, f"{what}: {k} dtype {a[k].dtype} vs {b[k].dtype}"
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_problems_are_deterministic_and_ignore_global_torch_state(name):
    reference = fingerprint(make_problem(name, seed=2, **SMALL[name]))
    assert reference["x0"].dtype == torch.float64
    assert_same(fingerprint(make_problem(name, seed=2, **SMALL[name])), reference, f"{name}: second call")

    default_dtype = torch.get_default_dtype()
    rng = torch.get_rng_state()
    try:
        torch.set_default_dtype(torch.float32)
        torch.manual_seed(12345)
        before = torch.get_rng_state()
        problem = make_problem(name, seed=2, **SMALL[name])
        assert torch.equal(torch.get_rng_state(), before), f"{name}: building the problem consumed the global RNG"
        torch.set_default_dtype(default_dtype)
        assert_same(fingerprint(problem), reference, f"{name}: float32 default dtype and another global seed")
    finally:
        torch.set_default_dtype(default_dtype)
        torch.set_rng_state(rng)


@pytest.mark.parametrize("name", ["quadratic", "toy2d", "regression"])
def test_seed_changes_the_problem(name):
    a = make_problem(name, seed=0, **SMALL[name])
    b = make_problem(name, seed=1, **SMALL[name])
    assert not torch.equal(a.x0, b.x0) or not torch.equal(a.full_grad(a.x0), b.full_grad(a.x0))


def test_minibatches_are_seeded_and_cover_each_epoch():
    problem = make_problem("regression", seed=0, **SMALL["regression"])  # 40 samples
    n, size = problem.n_train, 16

    def first(k, seed):
        stream = problem.minibatches(size, torch.Generator().manual_seed(seed))
        return [next(stream) for _ in range(k)]

    a, b, c = first(4, 7), first(4, 7), first(4, 8)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert any(not torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    assert all(x.shape[0] == size for x, _ in a)  # the partial last mini-batch is dropped
    per_epoch = n // size
    rows = [tuple(r) for x, _ in a[:per_epoch] for r in x.tolist()]
    assert len(set(rows)) == per_epoch * size, "no sample twice within an epoch"
    full = next(problem.minibatches(n, torch.Generator().manual_seed(0)))
    assert full is problem.train_data or all(torch.equal(s, t) for s, t in zip(full, problem.train_data))


def test_digits_late_starts_near_a_non_degenerate_minimum():
    problem = make_problem("digits_late", seed=3, **SMALL["digits_late"])
    w = problem.minimiser
    assert float(torch.linalg.vector_norm(problem.full_grad(w))) < 1e-9
    hessian = torch.autograd.functional.hessian(problem.full_loss, w)
    torch.testing.assert_close(problem.extra["hessian_at_minimum"], hessian, rtol=1e-9, atol=1e-11)
    assert float(torch.linalg.eigvalsh(hessian)[0]) > 0.0
    # S: the covariance of the per-sample gradients (weight decay included) at w*
    xs, ys = problem.train_data
    grads = torch.stack([torch.func.grad(problem.loss)(w, (xs[i:i + 1], ys[i:i + 1])) for i in range(len(ys))])
    torch.testing.assert_close(problem.extra["gradient_covariance"], torch.cov(grads.T, correction=0),
                               rtol=1e-9, atol=1e-12)
    assert float(torch.linalg.vector_norm(problem.x0 - w)) == pytest.approx(0.1)


def test_bundled_digits_come_from_the_cache_and_equal_scikit_learns(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    from momentum_ct.problems import digits_mlp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = digits_mlp.bundled_digits()  # from scikit-learn, written to the cache
    (stored,) = (tmp_path / "momentum_ct").glob("digits-sklearn-*.npz")
    # the cache is what is read next: a changed file is what comes back
    images, labels = first
    np.savez(stored, data=images[:10], target=labels[:10])
    assert len(digits_mlp.bundled_digits()[1]) == 10
    stored.unlink()
    images, labels = digits_mlp.bundled_digits()
    reference = load_digits()
    assert images.dtype == reference.data.dtype and np.array_equal(images, reference.data)
    assert np.array_equal(labels, reference.target)
    # an unwritable cache falls back to scikit-learn
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    assert np.array_equal(digits_mlp.bundled_digits()[0], reference.data)
