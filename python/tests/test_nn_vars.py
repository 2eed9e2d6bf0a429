"""theta.nn functional forms on theta.autograd.Vars: they record the graph, and their gradients
match closed forms and the one-call training helpers."""

import numpy as np
import pytest

import theta
from theta import nn

Var = getattr(theta.autograd, "Var", None)
pytestmark = pytest.mark.skipif(Var is None, reason="theta.autograd.Var is not bound")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_losses_on_vars_record_the_graph(rng):
    pred, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    p = Var(pred.copy(), requires_grad=True)
    loss = nn.mse_loss(p, target)
    assert isinstance(loss, Var)
    assert loss.item() == pytest.approx(nn.mse_loss(pred, target), rel=1e-15)
    loss.backward()
    np.testing.assert_allclose(p.grad, 2 * (pred - target) / pred.size, rtol=1e-13)

    logits, labels = rng.normal(size=(5, 3)), rng.integers(0, 3, size=5)
    z = Var(logits.copy(), requires_grad=True)
    ce = nn.cross_entropy(z, labels, reduction="sum")
    assert ce.item() == pytest.approx(nn.cross_entropy(logits, labels, reduction="sum"), rel=1e-14)
    ce.backward()
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(z.grad, soft - np.eye(3)[labels], rtol=1e-12, atol=1e-15)

    s, t = rng.normal(size=6), rng.integers(0, 2, size=6).astype(np.float64)
    sv = Var(s.copy(), requires_grad=True)
    bl = nn.binary_logistic_loss(sv, Var(t))
    bl.backward()
    np.testing.assert_allclose(sv.grad, (sigmoid(s) - t) / 6, rtol=1e-12)
    assert nn.accuracy(z, labels) == nn.accuracy(logits, labels)


def test_activations_on_vars(rng):
    x = rng.normal(size=(3, 4))
    for fn, grad in [(lambda v: nn.softplus(v), sigmoid(x)),
                     (lambda v: nn.leaky_relu(v, negative_slope=0.2), np.where(x > 0, 1.0, 0.2)),
                     (lambda v: nn.activate(v, "tanh"), 1 - np.tanh(x) ** 2)]:
        v = Var(x.copy(), requires_grad=True)
        out = fn(v)
        assert isinstance(out, Var)
        np.testing.assert_allclose(out.value, fn(x), rtol=1e-15)
        theta.autograd.sum(out).backward()
        np.testing.assert_allclose(v.grad, grad, rtol=1e-12)
    g = nn.gelu(Var(x))
    np.testing.assert_array_equal(g.value, nn.gelu(x))


def test_a_graph_through_a_module_matches_loss_backward(rng):
    net = nn.mlp([3, 5, 2], activation="tanh", seed=2)
    twin = net.clone()
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    loss = nn.mse_loss(net(Var(x)), y)
    loss.backward()
    want = nn.loss_backward(twin, x, y, loss="mse")
    assert loss.item() == want
    for (name, g), h in zip(net.named_grads().items(), twin.named_grads().values()):
        np.testing.assert_array_equal(g, h, err_msg=name)
    opt = nn.SGD(net, lr=0.1)
    opt.step()
    nn.SGD(twin, lr=0.1).step()
    np.testing.assert_array_equal(net[0].weight, twin[0].weight)
