"""Shared by the theta.theory tests: small MLPs from state dicts and NumPy reference computations."""

import numpy as np

import theta.theory as th


def mlp_state_dict(rng, widths, bias=True, prefix=""):
    """A PyTorch-style state_dict of nn.Sequential(Linear, act, Linear, ...) with random weights."""
    sd = {}
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        k = 2 * layer
        sd[f"{prefix}{k}.weight"] = rng.normal(size=(fan_out, fan_in)) / np.sqrt(fan_in)
        if bias:
            sd[f"{prefix}{k}.bias"] = rng.normal(size=fan_out) * 0.1
    return sd


def mlp(rng, widths, activation="tanh", **kwargs):
    """A theta MLP with random weights and its state_dict."""
    sd = mlp_state_dict(rng, widths)
    return th.mlp_from_state_dict(sd, activation=activation, **kwargs), sd


def forward(sd, x, activation=np.tanh):
    """The NumPy forward pass of the state_dict's MLP (standard parameterisation)."""
    layers = sorted({int(name.split(".")[-2]) for name in sd})
    h = x
    for i, k in enumerate(layers):
        h = h @ sd[f"{k}.weight"].T + sd.get(f"{k}.bias", 0.0)
        if i + 1 < len(layers):
            h = activation(h)
    return h


def flat_jacobian(model, x):
    """J:[n, O, P] from parameter_jacobians, parameters in registration order."""
    blocks = th.parameter_jacobians(model, x)
    n = x.shape[0]
    first = next(iter(blocks.values()))
    outputs = first.shape[1]
    return np.concatenate([b.reshape(n, outputs, -1) for b in blocks.values()], axis=2)


def ntk_from_jacobians(j1, j2):
    """[n1, n2, O, O] = sum_p J1[i, a, p] J2[j, b, p]."""
    return np.einsum("iap,jbp->ijab", j1, j2)


def rel_err(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def parameter_vector(model):
    """The model's parameters flattened in registration order (a copy)."""
    return np.concatenate([p.ravel() for p in model.named_parameters().values()])


def set_parameters(model, flat):
    """Writes a flat vector into the model's parameters (their NumPy views are the module's memory)."""
    offset = 0
    for p in model.named_parameters().values():
        p[...] = flat[offset:offset + p.size].reshape(p.shape)
        offset += p.size
