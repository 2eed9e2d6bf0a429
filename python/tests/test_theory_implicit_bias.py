"""theta.theory implicit bias: least squares by eigenmodes, the max-margin SVM with Soudry's offset,
and diagonal linear networks, against NumPy formulas and the optimality conditions."""

import numpy as np
import pytest

import theta
import theta.theory as th


def test_least_squares_paths_match_numpy(rng):
    n, d = 6, 10
    x, y = rng.normal(size=(n, d)), rng.normal(size=n)
    pinv = np.linalg.pinv(x)
    modes = th.least_squares_modes(x, y)
    assert isinstance(modes, th.LeastSquaresModes) and modes.samples == n and "rank=6" in repr(modes)
    np.testing.assert_allclose(np.sort(modes.sigma), np.sort(np.linalg.eigvalsh(x @ x.T / n)), rtol=1e-12)
    np.testing.assert_allclose(th.min_norm_solution(x, y), pinv @ y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(modes.v @ modes.coef, pinv @ y, rtol=1e-12, atol=1e-14)
    projector = np.eye(d) - pinv @ x
    np.testing.assert_allclose(th.null_space_projector(modes), projector, atol=1e-13)
    w0 = rng.normal(size=d)
    np.testing.assert_allclose(th.null_space_component(modes, w0), projector @ w0, atol=1e-13)
    np.testing.assert_allclose(th.spectral_solution(modes, np.ones(n)), pinv @ y, rtol=1e-12, atol=1e-14)
    # Gradient flow: dw/dt = -(x^T x w - x^T y) / n, solved by the matrix exponential of x^T x / n.
    t = 0.7
    lam, vec = np.linalg.eigh(x.T @ x / n)
    decay = vec @ np.diag(np.exp(-t * lam)) @ vec.T
    target = pinv @ y
    np.testing.assert_allclose(th.gradient_flow_solution(modes, t, w0), target + decay @ (w0 - target),
                               rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(th.gradient_flow_solution(modes, t), target - decay @ target, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(th.gradient_flow_gains(modes, t), 1 - np.exp(-t * modes.sigma), rtol=1e-14)
    ridge = np.linalg.solve(x.T @ x / n + 0.3 * np.eye(d), x.T @ y / n)
    np.testing.assert_allclose(th.ridge_solution(modes, 0.3), ridge, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(th.ridge_gains(modes, 0.3), modes.sigma / (modes.sigma + 0.3), rtol=1e-14)
    # The shrinkage ratio and the two risk formulas (per mode, and for any linear estimator).
    assert th.shrinkage_ratio(0.5) == pytest.approx((1 - np.exp(-0.5)) * 1.5 / 0.5, rel=1e-14)
    assert th.shrinkage_ratio(1.79328) == pytest.approx(1.298426, abs=1e-6)
    w_true = rng.normal(size=d)
    assert th.spectral_risk(modes, np.ones(n), w_true, 0.2) == pytest.approx(
        th.linear_estimator_risk(pinv, x, w_true, 0.2), rel=1e-11)
    with pytest.raises(ValueError):
        th.ridge_solution(modes, -1.0)


def test_max_margin_svm_and_soudrys_offset(rng):
    # Two support vectors z1 = (1, 0.5), z2 = (1, -1) and points far beyond the margin: w_hat = (1, 0).
    far = np.column_stack([rng.uniform(2, 3, size=6), rng.uniform(-1, 1, size=6)])
    x = np.vstack([[1.0, 0.5], [-1.0, 1.0], far * np.where(np.arange(6) % 2 == 0, 1.0, -1.0)[:, None]])
    y = np.array([1.0, -1.0] + [1.0 if i % 2 == 0 else -1.0 for i in range(6)])
    z = th.signed_samples(x, y)
    np.testing.assert_array_equal(z, y[:, None] * x)
    svm = th.max_margin_svm(z)
    np.testing.assert_allclose(svm["w"], [1.0, 0.0], atol=1e-10)
    margins = z @ svm["w"]
    assert margins.min() >= 1 - 1e-10  # feasible
    assert np.abs((margins - 1) * svm["alpha"]).max() <= 1e-10  # complementary slackness
    np.testing.assert_allclose(svm["alpha"] @ z, svm["w"], atol=1e-12)  # w = sum alpha_n z_n
    assert svm["kkt_residual"] <= 1e-12 and svm["sweeps"] >= 1
    support = th.support_vectors(svm["alpha"])
    np.testing.assert_array_equal(support, [0, 1])
    np.testing.assert_allclose(svm["alpha"][:2], [2 / 3, 1 / 3], rtol=1e-9)
    eta = 0.1
    offset = th.soudry_offset(z, svm["alpha"], eta)
    np.testing.assert_allclose(z[:2] @ offset, np.log(eta / svm["alpha"][:2]), rtol=1e-9)
    assert offset[1] == pytest.approx(-np.log(2) / 1.5, rel=1e-9)
    np.testing.assert_allclose(th.soudry_decay_matrix(z, svm["alpha"]), (svm["alpha"][:, None] * z).T @ z, atol=1e-13)
    with pytest.raises(ValueError):
        th.signed_samples(x, np.where(y > 0, 2.0, -1.0))


def test_diagonal_net_and_woodworths_potential(rng):
    n, d, alpha = 5, 12, 0.3
    net = th.DiagonalNet(d, alpha)
    assert isinstance(net, theta.nn.Module) and net.features == d and net.alpha == alpha
    np.testing.assert_array_equal(net.beta, np.zeros(d))
    u, v = rng.normal(size=d), rng.normal(size=d)
    net.load_state_dict({"u": u, "v": v})
    x = rng.normal(size=(n, d))
    np.testing.assert_allclose(net.beta, u * u - v * v, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(net(x)).ravel(), x @ (u * u - v * v), rtol=1e-12)
    beta = rng.normal(size=d)
    s = beta / alpha**2
    q = 2 - np.sqrt(4 + s * s) + s * np.arcsinh(s / 2)
    assert th.woodworth_potential(beta, alpha) == pytest.approx(alpha**2 * q.sum(), rel=1e-13)
    np.testing.assert_allclose(th.woodworth_mirror(beta, alpha), np.arcsinh(beta / (2 * alpha**2)), rtol=1e-14)
    # The constrained minimiser: it interpolates, and its mirror image lies in the row space of x (KKT).
    y = rng.normal(size=n)
    best = th.woodworth_minimizer(x, y, alpha)
    np.testing.assert_allclose(x @ best, y, atol=1e-10)
    mirror = th.woodworth_mirror(best, alpha)
    row_space = np.linalg.pinv(x) @ x
    np.testing.assert_allclose(row_space @ mirror, mirror, atol=1e-9)
    with pytest.raises(ValueError):
        th.DiagonalNet(d, 0.0)
