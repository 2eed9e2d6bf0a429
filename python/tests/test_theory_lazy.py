"""theta.theory.LazyScaled, alpha (f(w, x) - f(w0, x)): its output against the model evaluated
directly, and its training by gradient descent against kernel regression with the model's NTK."""

import math

import numpy as np
import pytest

import theta
import theta.theory as th
from theory_helpers import forward, mlp, parameter_vector, rel_err, set_parameters


def test_lazy_scaled_is_alpha_times_the_models_change(rng):
    net, sd = mlp(rng, [3, 8, 2])
    x = rng.normal(size=(5, 3))
    g = th.LazyScaled(net, 7.5)
    assert isinstance(g, theta.nn.Module) and g.alpha == 7.5 and g.model is net
    assert "LazyScaled" in repr(g)
    assert list(g.named_parameters()) == ["model." + name for name in net.named_parameters()]
    assert g.parameter_count == net.parameter_count
    np.testing.assert_array_equal(g(x), np.zeros((5, 2)))  # recentred: exactly 0 at w0
    # Move w through the wrapped model's parameter views; g follows, f(w0) does not.
    w = parameter_vector(net) + 0.1 * rng.normal(size=net.parameter_count)
    set_parameters(net, w)
    moved = {name: value + 0.0 for name, value in zip(sd, net.named_parameters().values())}
    expected = 7.5 * (forward(moved, x) - forward(sd, x))
    assert rel_err(g(x), expected) <= 1e-13
    np.testing.assert_allclose(g(x), 7.5 * (net(x) - th.mlp_from_state_dict(sd, activation="tanh")(x)), rtol=1e-14,
                               atol=0)
    # lazy_scaled is the same construction; a clone keeps its own parameters and its own f(w0).
    h = th.lazy_scaled(net, 2.0)
    assert isinstance(h, th.LazyScaled) and h.alpha == 2.0
    np.testing.assert_array_equal(h(x), np.zeros((5, 2)))  # w0 is where net is now
    copy = g.clone()
    assert isinstance(copy, th.LazyScaled) and copy.model is not net
    set_parameters(net, np.zeros(net.parameter_count))
    assert rel_err(copy(x), expected) <= 1e-13


def _gd(model, x, y, alpha, eta, steps):
    """`steps` plain GD steps with step eta on (1 / alpha^2) 1/2 |model(x) - y|^2.

    train_step's "mse" is the mean over the n O outputs, whose gradient is 2 / (n O) times the sum's
    half, so the SGD learning rate is eta n O / (2 alpha^2)."""
    optimizer = theta.nn.SGD(model, lr=eta * y.size / (2.0 * alpha * alpha))
    for _ in range(steps):
        theta.nn.train_step(model, optimizer, x, y, loss="mse")


def test_gradient_descent_on_a_lazily_scaled_linearisation_is_discrete_ntk_regression(rng):
    net = theta.nn.mlp([3, 16, 1], activation="tanh", parameterization="ntk", seed=3)
    x, y, x_test = rng.normal(size=(6, 3)), rng.normal(size=(6, 1)), rng.normal(size=(4, 3))
    eta, steps = 0.05, 40
    predicted = th.ntk_regression(k_test_train=th.ntk(net, x_test, x, form="trace"),
                                  k_train_train=th.ntk(net, x, form="trace"), y_train=y,
                                  f0_train=np.zeros((6, 1)), f0_test=np.zeros((4, 1)), eta=eta, t=steps,
                                  discrete=True)
    w0 = parameter_vector(net)
    moves = []
    for alpha in (1.0, 30.0):
        g = th.lazy_scaled(theta.nn.linearize(net), alpha)
        _gd(g, x, y, alpha, eta, steps)
        assert rel_err(g(x_test), predicted) <= 1e-12
        moves.append(parameter_vector(g) - w0)
    # The same function reached with parameter moves 1 / alpha as large.
    assert np.abs(moves[0]).max() > 0.01
    assert rel_err(30.0 * moves[1], moves[0]) <= 1e-11
    # The model itself (not linearised) approaches the same prediction like 1 / alpha.
    gaps = []
    for alpha in (10.0, 100.0):
        g = th.LazyScaled(net.clone(), alpha)
        _gd(g, x, y, alpha, eta, steps)
        gaps.append(rel_err(g(x_test), predicted))
    assert gaps[0] < 0.2
    assert gaps[1] / gaps[0] == pytest.approx(0.1, abs=0.03)
    np.testing.assert_array_equal(parameter_vector(net), w0)  # net itself was never trained


def test_lazy_scaled_rejects_bad_alpha_and_non_modules(rng):
    net, _ = mlp(rng, [2, 3, 1])
    for alpha in (0.0, -2.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="alpha"):
            th.LazyScaled(net, alpha)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        th.lazy_scaled(net, -1.0)
    with pytest.raises(TypeError):
        th.lazy_scaled(None, 1.0)
    with pytest.raises(TypeError):
        th.LazyScaled(np.ones((2, 2)), 1.0)
