"""theta.theory against PyTorch: a torch MLP's state_dict becomes a theta model whose empirical NTK and
loss Hessian-vector products equal torch's own (float64, 1e-12 relative)."""

import numpy as np
import pytest

import theta.theory as th
from theory_helpers import rel_err

torch = pytest.importorskip("torch")


def torch_mlp(widths, activation):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i + 2 < len(widths):
            layers.append(activation())
    return torch.nn.Sequential(*layers).double()


def torch_jacobian(net, x):
    """J:[n, O, P] by one autograd.grad call per output element."""
    params = list(net.parameters())
    out = net(x)
    n, outputs = out.shape
    rows = []
    for i in range(n):
        for o in range(outputs):
            grads = torch.autograd.grad(out[i, o], params, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows).reshape(n, outputs, -1).numpy()


@pytest.mark.parametrize("activation,name", [(torch.nn.Tanh, "tanh"), (torch.nn.ReLU, "relu")])
def test_ntk_equals_torch(activation, name):
    net = torch_mlp([5, 16, 12, 3], activation)
    theta_net = th.mlp_from_state_dict(net.state_dict(), activation=name)
    rng = np.random.default_rng(2)
    x1 = rng.normal(size=(6, 5))
    x2 = rng.normal(size=(4, 5))
    np.testing.assert_allclose(theta_net(x1), net(torch.from_numpy(x1)).detach().numpy(), rtol=1e-13, atol=1e-14)
    j1 = torch_jacobian(net, torch.from_numpy(x1))
    j2 = torch_jacobian(net, torch.from_numpy(x2))
    reference = np.einsum("iap,jbp->ijab", j1, j2)
    for method in ("structured", "jacobian"):
        assert rel_err(th.ntk(theta_net, x1, x2, method=method), reference) < 1e-12
    # The Jacobian itself, parameter by parameter, in torch's order and layout.
    blocks = th.parameter_jacobians(theta_net, x1)
    flat = np.concatenate([b.reshape(6, 3, -1) for b in blocks.values()], axis=2)
    assert rel_err(flat, j1) < 1e-12
    # Cross-check with torch.autograd.functional.jacobian on the parameters as inputs.
    names = [k for k, _ in net.named_parameters()]
    values = tuple(p.detach().clone() for p in net.parameters())

    def f(*ps):
        h = torch.from_numpy(x2)
        for i in range(0, len(ps), 2):
            h = h @ ps[i].T + ps[i + 1]
            if i + 2 < len(ps):
                h = torch.tanh(h) if name == "tanh" else torch.relu(h)
        return h

    jac = torch.autograd.functional.jacobian(f, values)
    flat2 = np.concatenate([j.reshape(4, 3, -1).numpy() for j in jac], axis=2)
    assert rel_err(th.ntk(theta_net, x2), np.einsum("iap,jbp->ijab", flat2, flat2)) < 1e-12
    assert len(names) == len(blocks)


def test_hvp_equals_torch():
    net = torch_mlp([4, 10, 8, 2], torch.nn.Tanh)
    theta_net = th.mlp_from_state_dict(net.state_dict(), activation="tanh")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 4))
    y = rng.normal(size=(9, 2))
    params = tuple(p.detach().clone() for p in net.parameters())
    shapes = [p.shape for p in params]

    def loss(*ps):
        h = torch.from_numpy(x)
        for i in range(0, len(ps), 2):
            h = h @ ps[i].T + ps[i + 1]
            if i + 2 < len(ps):
                h = torch.tanh(h)
        return torch.nn.functional.mse_loss(h, torch.from_numpy(y))

    v = rng.normal(size=theta_net.parameter_count)
    pieces, offset = [], 0
    for s in shapes:
        size = int(np.prod(s))
        pieces.append(torch.from_numpy(v[offset:offset + size].reshape(s)))
        offset += size
    _, hv = torch.autograd.functional.hvp(loss, params, tuple(pieces))
    reference = np.concatenate([h.reshape(-1).numpy() for h in hv])
    assert rel_err(th.hvp(theta_net, x, y, v, loss="mse"), reference) < 1e-12
    assert abs(th.module_loss(theta_net, x, y).value - loss(*params).item()) < 1e-14


def test_cross_entropy_hvp_equals_torch():
    net = torch_mlp([4, 7, 3], torch.nn.Tanh)
    theta_net = th.mlp_from_state_dict(net.state_dict(), activation="tanh")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 4))
    labels = rng.integers(0, 3, size=8)
    params = tuple(p.detach().clone() for p in net.parameters())

    def loss(w0, b0, w1, b1):
        h = torch.tanh(torch.from_numpy(x) @ w0.T + b0) @ w1.T + b1
        return torch.nn.functional.cross_entropy(h, torch.from_numpy(labels))

    v = rng.normal(size=theta_net.parameter_count)
    pieces, offset = [], 0
    for p in params:
        pieces.append(torch.from_numpy(v[offset:offset + p.numel()].reshape(p.shape)))
        offset += p.numel()
    _, hv = torch.autograd.functional.hvp(loss, params, tuple(pieces))
    reference = np.concatenate([h.reshape(-1).numpy() for h in hv])
    assert rel_err(th.hvp(theta_net, x, labels, v, loss="cross_entropy"), reference) < 1e-12
