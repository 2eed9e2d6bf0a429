"""theta.theory Hessian tools: Lanczos against numpy.linalg.eigh, Hutchinson and SLQ against the
trace, Hessian-vector products against finite differences of the gradient."""

import numpy as np
import pytest

import theta.theory as th
from theory_helpers import forward, mlp, parameter_vector, rel_err, set_parameters


def symmetric(rng, n, spread=1.0):
    a = rng.normal(size=(n, n))
    q, _ = np.linalg.qr(a)
    lam = np.linspace(-spread, 3 * spread, n) + rng.normal(size=n) * 0.01
    return (q * lam) @ q.T


def assert_same_vectors(got, want, tol):
    """Columns equal up to sign."""
    for i in range(want.shape[1]):
        sign = np.sign(got[:, i] @ want[:, i])
        assert np.abs(sign * got[:, i] - want[:, i]).max() < tol


def test_lanczos_on_a_numpy_matrix_matches_eigh(rng):
    a = symmetric(rng, 30)
    lam, vec = np.linalg.eigh(a)
    r = th.lanczos(a, k=4, iterations=30)
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:4], rtol=1e-12, atol=1e-12)
    assert_same_vectors(r["eigenvectors"], vec[:, ::-1][:, :4], 1e-10)
    assert r["iterations"] == 30 and r["residuals"].max() < 1e-10
    np.testing.assert_allclose(r["ritz_values"], lam, rtol=1e-12, atol=1e-12)
    small = th.lanczos(th.matrix_operator(a), k=3, iterations=30, which="smallest")
    np.testing.assert_allclose(small["eigenvalues"], lam[:3], rtol=1e-12, atol=1e-12)
    both = th.lanczos(a, k=2, iterations=30, which="both_ends")
    np.testing.assert_allclose(both["eigenvalues"], [lam[-1], lam[-2], lam[0], lam[1]], rtol=1e-12, atol=1e-12)
    mag = th.lanczos(a, k=1, iterations=30, which="magnitude")
    assert abs(mag["eigenvalues"][0] - lam[np.argmax(np.abs(lam))]) < 1e-12


def test_python_callable_operator(rng):
    a = symmetric(rng, 12)
    calls = []

    def apply(v):
        calls.append(1)
        return a @ v

    op = th.LinearOperator(12, apply)
    assert op.size == 12
    v = rng.normal(size=12)
    np.testing.assert_allclose(op(v), a @ v, rtol=1e-14)
    r = th.lanczos(op, k=2, iterations=12)
    np.testing.assert_allclose(r["eigenvalues"], np.linalg.eigvalsh(a)[::-1][:2], rtol=1e-12)
    assert len(calls) >= 12
    with pytest.raises(ValueError, match=r"\[12\].*\[5\]"):
        op(np.ones(5))
    bad = th.LinearOperator(12, lambda v: np.ones(3))
    with pytest.raises(ValueError):
        th.lanczos(bad, k=1)


def test_lanczos_refuses_a_non_symmetric_matrix(rng):
    with pytest.raises(ValueError):
        th.lanczos(rng.normal(size=(6, 6)), k=1)
    with pytest.raises(ValueError):
        th.matrix_operator(rng.normal(size=(6, 6)))


def test_hutchinson_trace_is_within_its_error(rng):
    a = symmetric(rng, 40)
    est = th.hutchinson_trace(a, probes=400, seed=3)
    assert est["probes"] == 400
    assert abs(est["mean"] - np.trace(a)) < 4 * est["std_error"]
    # The per-probe variance of Rademacher probes is 2 sum_{i != j} a_ij^2.
    off = a - np.diag(np.diag(a))
    predicted = np.sqrt(2 * np.sum(off**2) / 400)
    assert 0.8 < est["std_error"] / predicted < 1.25
    # A diagonal matrix is estimated exactly.
    d = np.diag(rng.normal(size=10))
    assert abs(th.hutchinson_trace(d, probes=3)["mean"] - np.trace(d)) < 1e-12
    assert np.isnan(th.hutchinson_trace(d, probes=1)["std_error"])


def test_slq_density(rng):
    n = 25
    a = symmetric(rng, n)
    lam = np.linalg.eigvalsh(a)
    d = th.slq_density(a, probes=4, steps=n, seed=7, grid_points=2000)
    # With as many steps as the dimension every probe's nodes are the eigenvalues.
    for nodes, weights in zip(d["nodes"], d["weights"]):
        np.testing.assert_allclose(nodes, lam, rtol=1e-10, atol=1e-10)
        assert abs(weights.sum() - 1) < 1e-12
    dx = d["grid"][1] - d["grid"][0]
    assert abs(d["density"].sum() * dx - 1) < 1e-3
    # The SLQ mean eigenvalue is Hutchinson's estimate over the same probes divided by n.
    hutch = th.hutchinson_trace(a, probes=4, seed=7)["mean"]
    assert abs(d["mean_eigenvalue"] * n - hutch) < 1e-10 * abs(hutch) + 1e-10
    grid = np.linspace(-2, 4, 50)
    on_grid = th.slq_density(a, probes=2, steps=10, grid=grid, sigma=0.1)
    np.testing.assert_array_equal(on_grid["grid"], grid)
    assert on_grid["sigma"] == 0.1


def test_eigh_and_svd_match_numpy(rng):
    a = symmetric(rng, 8)
    values, vectors = th.eigh(a)
    lam, vec = np.linalg.eigh(a)
    np.testing.assert_allclose(values, lam, rtol=1e-12, atol=1e-13)
    assert_same_vectors(vectors, vec, 1e-10)
    b = rng.normal(size=(7, 4))
    u, s, v = th.svd(b)
    np.testing.assert_allclose(s, np.linalg.svd(b, compute_uv=False), rtol=1e-12)
    np.testing.assert_allclose(u @ np.diag(s) @ v.T, b, atol=1e-12)


def test_flatten_and_unflatten(rng):
    ts = [rng.normal(size=(2, 3)), rng.normal(size=4)]
    flat = th.flatten_tensors(ts)
    np.testing.assert_array_equal(flat, np.concatenate([t.ravel() for t in ts]))
    back = th.unflatten_like(flat, ts)
    for got, want in zip(back, ts):
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def regression(rng):
    model, sd = mlp(rng, [3, 8, 2])
    x = rng.normal(size=(10, 3))
    y = rng.normal(size=(10, 2))
    return model, sd, x, y


def test_module_loss_value_and_gradient(regression):
    model, sd, x, y = regression
    f = th.module_loss(model, x, y, loss="mse")
    assert abs(f.value - np.mean((forward(sd, x) - y) ** 2)) < 1e-13
    assert f.size == model.parameter_count
    # The gradient against central differences of the NumPy loss.
    theta0 = parameter_vector(model)
    g = f.gradient()
    eps = 1e-6
    for i in [0, 5, 17, len(theta0) - 1]:
        e = np.zeros_like(theta0)
        e[i] = eps
        set_parameters(model, theta0 + e)
        plus = th.module_loss(model, x, y).value
        set_parameters(model, theta0 - e)
        minus = th.module_loss(model, x, y).value
        set_parameters(model, theta0)
        assert abs((plus - minus) / (2 * eps) - g[i]) < 1e-8


def test_hvp_matches_finite_differences_of_the_gradient(regression, rng):
    model, _, x, y = regression
    v = rng.normal(size=model.parameter_count)
    hv = th.hvp(model, x, y, v)
    theta0 = parameter_vector(model)
    eps = 1e-5
    set_parameters(model, theta0 + eps * v)
    g_plus = th.module_loss(model, x, y).gradient()
    set_parameters(model, theta0 - eps * v)
    g_minus = th.module_loss(model, x, y).gradient()
    set_parameters(model, theta0)
    assert rel_err(hv, (g_plus - g_minus) / (2 * eps)) < 1e-7
    f = th.module_loss(model, x, y)
    np.testing.assert_array_equal(f.hvp(v), hv)
    np.testing.assert_array_equal(th.hessian_operator(model, x, y)(v), hv)
    np.testing.assert_array_equal(f.operator()(v), hv)
    np.testing.assert_array_equal(th.ModuleLoss(model, x, y, loss="mse").hvp(v), hv)


def test_cross_entropy_hvp_matches_finite_differences(rng):
    model, sd = mlp(rng, [3, 6, 4])
    x = rng.normal(size=(9, 3))
    labels = rng.integers(0, 4, size=9)
    f = th.module_loss(model, x, labels, loss="cross_entropy")
    logits = forward(sd, x)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert abs(f.value + logp[np.arange(9), labels].mean()) < 1e-13
    v = rng.normal(size=f.size)
    theta0 = parameter_vector(model)
    eps = 1e-5
    set_parameters(model, theta0 + eps * v)
    g_plus = th.module_loss(model, x, labels, loss="cross_entropy").gradient()
    set_parameters(model, theta0 - eps * v)
    g_minus = th.module_loss(model, x, labels, loss="cross_entropy").gradient()
    set_parameters(model, theta0)
    assert rel_err(f.hvp(v), (g_plus - g_minus) / (2 * eps)) < 1e-7


def test_hessian_eigs_match_the_dense_hessian(regression):
    model, _, x, y = regression
    p = model.parameter_count
    f = th.module_loss(model, x, y)
    dense = np.stack([f.hvp(e) for e in np.eye(p)], axis=1)
    dense = (dense + dense.T) / 2
    lam, vec = np.linalg.eigh(dense)
    r = th.hessian_eigs(model, x, y, k=3, iterations=p)
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:3], rtol=1e-10, atol=1e-12)
    assert_same_vectors(r["eigenvectors"], vec[:, ::-1][:, :3], 1e-6)
    op = th.hessian_operator(model, x, y)
    assert op.size == p
    est = th.hutchinson_trace(op, probes=200, seed=1)
    assert abs(est["mean"] - np.trace(dense)) < 5 * est["std_error"]
    d = th.slq_density(op, probes=3, steps=p, seed=2)
    assert abs(d["mean_eigenvalue"] * p - th.hutchinson_trace(op, probes=3, seed=2)["mean"]) < 1e-9
    # The model forms of the solvers run the same computation on the same operator.
    by_model = th.lanczos(model, x, y, k=3, iterations=p)
    np.testing.assert_array_equal(by_model["eigenvalues"], r["eigenvalues"])
    assert th.hutchinson_trace(model, x, y, probes=200, seed=1) == est
    np.testing.assert_array_equal(th.slq_density(model, x, y, probes=3, steps=p, seed=2)["density"], d["density"])


def test_hessian_errors(regression, rng):
    model, _, x, y = regression
    with pytest.raises(ValueError, match=r"\[%d\].*\[3\]" % model.parameter_count):
        th.hvp(model, x, y, np.ones(3))
    with pytest.raises(ValueError, match="loss"):
        th.module_loss(model, x, y, loss="l1")
    with pytest.raises(ValueError, match=r"\[10, 4\]"):
        th.module_loss(model, rng.normal(size=(10, 4)), y)
    with pytest.raises(ValueError, match="which"):
        th.lanczos(np.eye(3), k=1, which="middle")
    with pytest.raises(ValueError):
        th.hutchinson_trace(np.eye(3), probes=0)
