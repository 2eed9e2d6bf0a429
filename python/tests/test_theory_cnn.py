"""theory on CNNs from Python: the NTK of small CNNs (structured against the Jacobian route, finite
differences and, when it imports, torch), per-sample gradients, and state dicts exchanged with torch."""

import numpy as np
import pytest

import theta.autograd as ag
import theta.theory as th
from theta import nn
from theta.autograd import Var
from theory_helpers import rel_err


# ---- theory on a CNN -------------------------------------------------------------------------

def small_cnn(**kwargs):
    options = dict(image=(2, 4, 4), channels=[3, 2], kernel_size=3, out_features=2, seed=5)
    options.update(kwargs)
    return nn.cnn(**options)


def fd_jacobian(net, x, eps=1e-6):
    """J:[n, O, P] by central differences in the parameters, registration order."""
    params = list(net.named_parameters().values())
    columns = []
    for p in params:
        for idx in np.ndindex(p.shape):
            saved = p[idx]
            p[idx] = saved + eps
            plus = net(x)
            p[idx] = saved - eps
            minus = net(x)
            p[idx] = saved
            columns.append((plus - minus) / (2 * eps))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(readout="flatten", padding_mode="circular"),
    dict(parameterization="ntk", sigma_w=1.3, sigma_b=0.2, activation="tanh"),
])
def test_cnn_ntk_structured_equals_contraction_and_finite_differences(rng, kwargs):
    net = small_cnn(**kwargs)
    x1, x2 = rng.normal(size=(3, 32)), rng.normal(size=(2, 32))
    contraction = th.ntk(net, x1, x2, method="jacobian")
    for route in ("automatic", "weight_gradients", "pixel_pairs"):
        for i in (1, 3):
            net[i].ntk_route = route
        assert rel_err(th.ntk(net, x1, x2, method="structured"), contraction) < 1e-10
    j1, j2 = fd_jacobian(net, x1), fd_jacobian(net, x2)
    assert rel_err(contraction, np.einsum("iap,jbp->ijab", j1, j2)) < 1e-6
    np.testing.assert_allclose(th.ntk(net, x1, form="trace"), np.einsum("iap,jap->ij", j1, j1), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("conv", [
    dict(stride=2, padding=1),
    dict(stride=2, padding=2, dilation=2, padding_mode="circular", bias=False),
    dict(padding=1, parameterization="ntk", sigma_w=1.1, sigma_b=0.4),
])
def test_handmade_conv_net_ntk_routes_agree(rng, conv):
    """Strided, dilated and circular convolutions, a residual block and average pooling in one model."""
    net = nn.Sequential(nn.Unflatten((2, 6, 5)), nn.Conv2d(2, 3, 3, seed=1, **conv), nn.Activation("tanh"),
                        nn.residual_conv_block(3, seed=2), nn.AvgPool2d(2, stride=1), nn.Flatten())
    net.append(nn.Linear(net(np.zeros((1, 60))).shape[1], 2, seed=3))
    x1, x2 = rng.normal(size=(3, 60)), rng.normal(size=(2, 60))
    contraction = th.ntk(net, x1, x2, method="jacobian")
    convs = [net[1], net[3].body[1], net[3].body[3]]
    for route in ("weight_gradients", "pixel_pairs"):
        for layer in convs:
            layer.ntk_route = route
        assert rel_err(th.ntk(net, x1, x2, method="structured"), contraction) < 1e-10
        np.testing.assert_allclose(th.ntk(net, x1, form="diagonal"),
                                   np.einsum("iiab->iab", th.ntk(net, x1, method="jacobian")), rtol=1e-10, atol=1e-12)
    assert rel_err(contraction, np.einsum("iap,jbp->ijab", fd_jacobian(net, x1), fd_jacobian(net, x2))) < 1e-6


def test_cnn_per_sample_gradients_equal_single_sample_backward(rng):
    net = small_cnn()
    x, y = rng.normal(size=(3, 32)), rng.normal(size=(3, 2))
    blocks = th.per_sample_gradients(net, x, y, loss="mse")
    for i in range(3):
        net.zero_grad()
        ag.mean((net(Var(x[i:i + 1])) - Var(y[i:i + 1])) ** 2).backward()
        for name, g in net.named_grads().items():
            np.testing.assert_allclose(blocks[name][i], g, rtol=1e-12, atol=1e-14)


# ---- PyTorch ---------------------------------------------------------------------------------

def torch_cnn(torch, image, channels, out_features, readout, padding_mode):
    """torch.nn.Sequential with theta's cnn layout (the pooling readout in one slot)."""
    layers = [torch.nn.Unflatten(1, image)]
    c_in = image[0]
    for c in channels:
        layers += [torch.nn.Conv2d(c_in, c, 3, padding=1, padding_mode=padding_mode), torch.nn.ReLU()]
        c_in = c
    if readout == "global_average":
        layers.append(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()))
        features = c_in
    else:
        layers.append(torch.nn.Flatten())
        features = c_in * image[1] * image[2]
    layers.append(torch.nn.Linear(features, out_features))
    return torch.nn.Sequential(*layers).double()


@pytest.mark.parametrize("readout, padding_mode", [("global_average", "zeros"), ("flatten", "circular")])
def test_cnn_state_dict_round_trips_with_torch(rng, readout, padding_mode):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    image = (2, 5, 4)
    ref = torch_cnn(torch, image, [3, 4], 3, readout, padding_mode)
    x = rng.normal(size=(4, 40))
    # theta -> torch: theta's names are torch's under the Sequential's "layers." prefix.
    net = nn.cnn(image=image, channels=[3, 4], out_features=3, readout=readout, padding_mode=padding_mode, seed=8)
    ref.load_state_dict({k[len("layers."):]: torch.from_numpy(v) for k, v in net.state_dict().items()})
    np.testing.assert_allclose(ref(torch.from_numpy(x)).detach().numpy(), net(x), rtol=1e-12, atol=1e-13)
    # torch -> theta.
    torch.manual_seed(1)
    ref = torch_cnn(torch, image, [3, 4], 3, readout, padding_mode)
    net.load_state_dict({"layers." + k: v for k, v in ref.state_dict().items()})
    np.testing.assert_allclose(net(x), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-13)


def test_cnn_ntk_matches_torch_jacrev(rng):
    torch = pytest.importorskip("torch")
    try:
        from torch.func import functional_call, jacrev
    except ImportError:
        functorch = pytest.importorskip("functorch")
        jacrev = functorch.jacrev
        from torch.nn.utils.stateless import functional_call
    net = small_cnn(padding_mode="circular")
    ref = torch_cnn(torch, (2, 4, 4), [3, 2], 2, "global_average", "circular")
    ref.load_state_dict({k[len("layers."):]: torch.from_numpy(v) for k, v in net.state_dict().items()})
    params = {k: v.detach() for k, v in ref.named_parameters()}
    x1, x2 = rng.normal(size=(3, 32)), rng.normal(size=(2, 32))

    def jacobian(x):
        jac = jacrev(lambda p: functional_call(ref, p, (torch.from_numpy(x),)))(params)
        return np.concatenate([jac[k].reshape(x.shape[0], 2, -1).numpy() for k in params], axis=2)

    want = np.einsum("iap,jbp->ijab", jacobian(x1), jacobian(x2))
    assert rel_err(th.ntk(net, x1, x2, method="structured"), want) < 1e-12
    assert rel_err(th.ntk(net, x1, x2, method="jacobian"), want) < 1e-12
