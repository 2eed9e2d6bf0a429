"""Central finite differences and the gradient check the autograd tests share."""

import numpy as np

import theta.autograd as ag
from theta.autograd import Var

EPS = 1e-6


def finite_difference(f, arrays, eps=EPS):
    """Central differences of the scalar f(list of arrays) with respect to each array."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (f(plus) - f(minus)) / (2 * eps)
        grads.append(g)
    return grads


def check_gradients(op, arrays, rng, rtol=1e-5, atol=1e-6):
    """Gradients of <w, op(*xs)> for a random w, by grad() and by finite differences."""
    out = op(*[Var(a.copy()) for a in arrays])
    w = rng.standard_normal(out.shape)

    def loss(values):
        with ag.no_grad():
            return float(np.sum(w * op(*[Var(v) for v in values]).value))

    xs = [Var(a.copy(), requires_grad=True) for a in arrays]
    # allow_unused: an op with a zero derivative (sign) records no dependence on its input.
    grads = ag.grad(ag.vdot(op(*xs), Var(w)), xs, allow_unused=True)
    for x, got, want in zip(xs, grads, finite_difference(loss, arrays)):
        got = np.zeros(x.shape) if got is None else got.value
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
