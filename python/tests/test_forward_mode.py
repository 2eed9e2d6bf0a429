"""Forward mode from Python: DualLevel / make_dual / tangent against closed forms, nn.linearize
against the model and its kernel, and theory.ntk_operator against the formed kernel."""

import numpy as np
import pytest

import theta.autograd as ag
import theta.nn as nn
import theta.theory as th
from theta.autograd import Var
from theory_helpers import mlp


def test_dual_level_carries_a_tangent_through_ops(rng):
    x, t = rng.standard_normal(4), rng.standard_normal(4)
    with ag.DualLevel():
        y = ag.sum(ag.exp(ag.make_dual(Var(x), Var(t))) * 3.0)
        np.testing.assert_allclose(ag.tangent(y).value, 3.0 * np.exp(x) @ t, rtol=1e-14)
        assert ag.tangent(Var(x)) is None  # depends on no dual: zero tangent
        with pytest.raises(RuntimeError, match="already open"):
            with ag.DualLevel():
                pass
    with pytest.raises(RuntimeError, match="no forward-mode level"):
        ag.make_dual(Var(x), Var(t))
    with ag.DualLevel():
        with pytest.raises(ValueError, match="does not match primal"):
            ag.make_dual(Var(x), Var(np.ones(3)))


def test_linearized_model_equals_the_model_at_w0_and_moves_by_j_d(rng):
    model = nn.mlp([3, 8, 2], activation="tanh", seed=3)
    lin = nn.linearize(model)
    assert isinstance(lin, nn.Linearized)
    x = Var(rng.standard_normal((5, 3)))
    f0 = model(x).value
    np.testing.assert_array_equal(lin(x).value, f0)
    base = model.named_parameters()  # views: writes change the model
    assert list(lin.named_parameters()) == list(base)
    for w0, w in zip(lin.origin, base.values()):
        np.testing.assert_array_equal(w0, w)
    # Moved by d, the linearised output moves by J(w0) d: central differences of the model.
    d = {name: rng.standard_normal(w.shape) * 0.1 for name, w in base.items()}
    for name, w in lin.named_parameters().items():
        w += d[name]
    moved = lin(x).value - f0
    eps = 1e-5
    for name, w in base.items():
        w += eps * d[name]
    plus = model(x).value
    for name, w in base.items():
        w -= 2 * eps * d[name]
    minus = model(x).value
    np.testing.assert_allclose(moved, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-9)
    assert np.abs(moved).max() > 1e-3  # the check above compares a real movement


def test_ntk_operator_applies_the_formed_kernel_and_feeds_lanczos(rng):
    model, _ = mlp(rng, [4, 16, 2])
    x = rng.standard_normal((40, 4))
    k = th.ntk(model, x).transpose(0, 2, 1, 3).reshape(80, 80)
    op = th.ntk_operator(model, x, chunk=16)
    assert op.size == 80
    v = rng.standard_normal(80)
    np.testing.assert_allclose(op(v), k @ v, rtol=1e-12, atol=1e-12 * np.abs(k @ v).max())
    top = th.lanczos(op, k=3, iterations=60)
    np.testing.assert_allclose(top["eigenvalues"], np.linalg.eigvalsh(k)[::-1][:3], rtol=1e-9)
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        th.ntk_operator(model, x, chunk=0)
