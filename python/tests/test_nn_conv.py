"""Convolutional layers and ops from Python: theta.autograd's conv2d and pooling against NumPy loops
and central differences, theta.nn's Conv2d, pooling, Unflatten, BatchNorm2d, residual_conv_block and
cnn against NumPy references built from their own parameters, errors, and the NTK of a small CNN
(structured against the Jacobian route, finite differences and, when it imports, torch)."""

import numpy as np
import pytest

import theta.autograd as ag
import theta.theory as th
from theta import nn
from theta.autograd import Var
from theory_helpers import rel_err

EPS = 1e-6


# ---- NumPy references ------------------------------------------------------------------------

def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_ref(x, w, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """out[n, o, y, x] = sum_{c, i, j} w[o, c, i, j] x_padded[n, c, y s + i d, x s + j d], by loops."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for y in range(ho):
        for xx in range(wo):
            for i in range(kh):
                for j in range(kw):
                    r, c = y * sh + i * dh - ph, xx * sw + j * dw - pw
                    if padding_mode == "circular":
                        r, c = r % h, c % wd
                    elif not (0 <= r < h and 0 <= c < wd):
                        continue
                    out[:, :, y, xx] += x[:, :, r, c] @ w[:, :, i, j].T
    return out


def avg_pool_ref(x, kernel, stride=None, padding=0):
    """Mean over windows of the zero-padded x, every window dividing by kh kw."""
    (kh, kw) = pair(kernel)
    (sh, sw) = pair(kernel if stride is None else stride)
    (ph, pw) = pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for y in range(ho):
        for xx in range(wo):
            out[:, :, y, xx] = xp[:, :, y * sh:y * sh + kh, xx * sw:xx * sw + kw].mean(axis=(2, 3))
    return out


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


def check_gradients(op, arrays, rng, rtol=1e-6, atol=1e-7):
    """Gradients of <w, op(*xs)> for a random w, by grad() and by central differences."""
    w = rng.standard_normal(op(*[Var(a.copy()) for a in arrays]).shape)

    def loss(values):
        with ag.no_grad():
            return float(np.sum(w * op(*[Var(v) for v in values]).value))

    xs = [Var(a.copy(), requires_grad=True) for a in arrays]
    grads = ag.grad(ag.vdot(op(*xs), Var(w)), xs)
    for got, want in zip(grads, finite_difference(loss, arrays)):
        np.testing.assert_allclose(got.value, want, rtol=rtol, atol=atol)


GEOMETRIES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(padding=2, dilation=2, padding_mode="circular"),
    dict(stride=(1, 2), padding=(2, 1), padding_mode="circular"),
]


# ---- theta.autograd ops -----------------------------------------------------------------------

@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv2d_matches_numpy_loops_and_its_adjoints(rng, geometry):
    x = rng.normal(size=(2, 3, 6, 5))
    w = rng.normal(size=(4, 3, 3, 2))
    y = ag.conv2d(x, w, **geometry)
    assert isinstance(y, Var)
    want = conv_ref(x, w, **geometry)
    np.testing.assert_allclose(y.value, want, rtol=1e-12, atol=1e-12)
    # The two adjoints: <conv(x, w), g> = <x, input_grad(g, w)> = <w, weight_grad(x, g)>.
    g = rng.normal(size=want.shape)
    gx = ag.conv2d_input_grad(g, w, x.shape, **geometry).value
    gw = ag.conv2d_weight_grad(x, g, w.shape, **geometry).value
    assert gx.shape == x.shape and gw.shape == w.shape
    inner = np.sum(want * g)
    assert np.sum(x * gx) == pytest.approx(inner, rel=1e-12)
    assert np.sum(w * gw) == pytest.approx(inner, rel=1e-12)
    # They are what reverse mode through conv2d computes.
    xv, wv = Var(x.copy(), requires_grad=True), Var(w.copy(), requires_grad=True)
    dx, dw = ag.grad(ag.vdot(ag.conv2d(xv, wv, **geometry), Var(g)), [xv, wv])
    np.testing.assert_allclose(dx.value, gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw.value, gw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES[1:4])
def test_conv2d_and_its_adjoints_gradients_match_finite_differences(rng, geometry):
    x = rng.normal(size=(2, 2, 5, 4))
    w = rng.normal(size=(3, 2, 2, 3))
    check_gradients(lambda a, b: ag.conv2d(a, b, **geometry), [x, w], rng)
    g = rng.normal(size=conv_ref(x, w, **geometry).shape)
    check_gradients(lambda a, b: ag.conv2d_input_grad(a, b, x.shape, **geometry), [g, w], rng)
    check_gradients(lambda a, b: ag.conv2d_weight_grad(a, b, w.shape, **geometry), [x, g], rng)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 0))])
def test_avg_pool2d_matches_numpy_and_finite_differences(rng, kernel, stride, padding):
    x = rng.normal(size=(2, 3, 5, 6))
    y = ag.avg_pool2d(x, kernel, stride=stride, padding=padding).value
    np.testing.assert_allclose(y, avg_pool_ref(x, kernel, stride, padding), rtol=1e-13, atol=1e-14)
    g = rng.normal(size=y.shape)
    gx = ag.avg_pool2d_grad(g, x.shape, kernel, stride=stride, padding=padding).value
    assert np.sum(x * gx) == pytest.approx(np.sum(y * g), rel=1e-12)
    check_gradients(lambda a: ag.avg_pool2d(a, kernel, stride=stride, padding=padding), [x], rng)
    check_gradients(lambda a: ag.avg_pool2d_grad(a, x.shape, kernel, stride=stride, padding=padding), [g], rng)


def test_global_avg_pool2d_and_its_adjoint(rng):
    x = rng.normal(size=(3, 2, 4, 5))
    y = ag.global_avg_pool2d(x).value
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)), rtol=1e-13)
    g = rng.normal(size=(3, 2))
    gx = ag.global_avg_pool2d_grad(g, x.shape).value
    np.testing.assert_allclose(gx, np.broadcast_to(g[:, :, None, None] / 20, x.shape), rtol=1e-14)
    check_gradients(ag.global_avg_pool2d, [x], rng)
    check_gradients(lambda a: ag.global_avg_pool2d_grad(a, x.shape), [g], rng)


def test_conv_ops_keep_float32(rng):
    x = rng.normal(size=(1, 2, 4, 4)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    y = ag.conv2d(x, w, padding=1).value
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, conv_ref(x.astype(np.float64), w.astype(np.float64), padding=1), rtol=1e-5,
                               atol=1e-5)
    assert ag.avg_pool2d(x, 2).value.dtype == np.float32


def test_conv_op_errors_are_clear(rng):
    x = rng.normal(size=(2, 3, 5, 5))
    with pytest.raises(ValueError, match="input has 3 channels but weight expects 2"):
        ag.conv2d(x, rng.normal(size=(4, 2, 3, 3)))
    with pytest.raises(ValueError, match='padding_mode: expected "zeros" or "circular", got "reflect"'):
        ag.conv2d(x, rng.normal(size=(4, 3, 3, 3)), padding_mode="reflect")
    with pytest.raises(TypeError, match="stride: expected an int or a pair of ints"):
        ag.conv2d(x, rng.normal(size=(4, 3, 3, 3)), stride=(1, 2, 3))
    with pytest.raises(ValueError, match="stride must be positive"):
        ag.conv2d(x, rng.normal(size=(4, 3, 3, 3)), stride=0)
    with pytest.raises(ValueError, match="kernel"):
        ag.conv2d(x, rng.normal(size=(4, 3, 7, 7)))
    with pytest.raises(ValueError, match="expected input"):
        ag.conv2d(x[0], rng.normal(size=(4, 3, 3, 3)))
    with pytest.raises(TypeError):
        ag.conv2d(np.ones((1, 1, 3, 3), dtype=np.int64), np.ones((1, 1, 2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="grad_out"):
        ag.conv2d_input_grad(rng.normal(size=(2, 4, 2, 2)), rng.normal(size=(4, 3, 3, 3)), x.shape)
    with pytest.raises(ValueError, match="padding"):
        ag.avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="expected input"):
        ag.global_avg_pool2d(x[0])


# ---- layers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    dict(),
    dict(stride=2, padding=1, bias=False),
    dict(padding=2, dilation=2, padding_mode="circular"),
    dict(padding=1, parameterization="ntk", sigma_w=1.4, sigma_b=0.3),
])
def test_conv2d_layer_matches_numpy(rng, options):
    layer = nn.Conv2d(3, 4, 3, seed=7, **options)
    x = rng.normal(size=(2, 3, 7, 6))
    geometry = {k: options[k] for k in ("stride", "padding", "dilation", "padding_mode") if k in options}
    ntk = options.get("parameterization") == "ntk"
    scale_w = options.get("sigma_w", 1.0) / np.sqrt(3 * 9) if ntk else 1.0
    scale_b = options.get("sigma_b", 0.0) if ntk else 1.0
    want = scale_w * conv_ref(x, layer.weight, **geometry)
    if options.get("bias", True):
        want = want + scale_b * layer.bias[None, :, None, None]
    else:
        assert layer.bias is None
    np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-12)
    assert layer.weight.shape == (4, 3, 3, 3)
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (3, 4, 3)
    assert layer.stride == options.get("stride", 1)
    assert layer.padding == options.get("padding", 0)
    assert layer.dilation == options.get("dilation", 1)
    assert layer.padding_mode == options.get("padding_mode", "zeros")
    assert layer.parameterization == ("ntk" if ntk else "standard")
    assert layer.weight_scale == pytest.approx(scale_w, rel=1e-15)
    assert layer.bias_scale == pytest.approx(scale_b, rel=1e-15)
    if ntk:
        assert abs(layer.weight.std() - 1.0) < 0.35
    else:
        assert np.abs(layer.weight).max() <= 1 / np.sqrt(27)


def test_conv2d_layer_seed_dtype_and_weight_view(rng):
    a, b, c = nn.Conv2d(2, 3, 3, seed=1), nn.Conv2d(2, 3, 3, seed=1), nn.Conv2d(2, 3, 3, seed=2)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, c.weight)
    f32 = nn.Conv2d(2, 3, 3, dtype="float32")
    assert f32.weight.dtype == np.float32
    assert f32(np.ones((1, 2, 4, 4), dtype=np.float32)).dtype == np.float32
    a.weight[...] = 0.0
    a.bias[...] = 2.0
    np.testing.assert_array_equal(a(rng.normal(size=(1, 2, 4, 4))), np.full((1, 3, 2, 2), 2.0))


def test_conv2d_layer_parameter_gradients_match_finite_differences(rng):
    layer = nn.Conv2d(2, 3, 2, stride=2, padding=1, padding_mode="circular", seed=3)
    x = rng.normal(size=(2, 2, 4, 5))
    w_out = rng.normal(size=layer(x).shape)
    xv = Var(x.copy(), requires_grad=True)
    layer.zero_grad()
    ag.vdot(layer(xv), Var(w_out)).backward()
    grads = layer.named_grads()
    params = layer.named_parameters()  # views: writes change the layer

    def loss(values):
        saved = [p.copy() for p in params.values()]
        for p, v in zip(params.values(), values):
            p[...] = v
        out = float(np.sum(w_out * layer(x)))
        for p, v in zip(params.values(), saved):
            p[...] = v
        return out

    for name, want in zip(params, finite_difference(loss, [p.copy() for p in params.values()])):
        np.testing.assert_allclose(grads[name], want, rtol=1e-6, atol=1e-7)
    fd_x = finite_difference(lambda v: float(np.sum(w_out * layer(v[0]))), [x])[0]
    np.testing.assert_allclose(xv.grad, fd_x, rtol=1e-6, atol=1e-7)


def test_ntk_route_property():
    layer = nn.Conv2d(1, 2, 3)
    assert layer.ntk_route == "automatic"
    for route in ("pixel_pairs", "weight_gradients", "automatic"):
        layer.ntk_route = route
        assert layer.ntk_route == route
    with pytest.raises(ValueError, match='ntk_route: expected "automatic", "weight_gradients" or "pixel_pairs"'):
        layer.ntk_route = "fastest"


def test_pooling_and_unflatten_layers(rng):
    x = rng.normal(size=(2, 3, 6, 5))
    np.testing.assert_allclose(nn.AvgPool2d(2)(x), avg_pool_ref(x, 2), rtol=1e-13)
    np.testing.assert_allclose(nn.AvgPool2d(3, stride=1, padding=1)(x), avg_pool_ref(x, 3, 1, 1), rtol=1e-13)
    np.testing.assert_allclose(nn.GlobalAvgPool2d()(x), x.mean(axis=(2, 3)), rtol=1e-13)
    flat = rng.normal(size=(4, 2 * 3 * 5))
    np.testing.assert_array_equal(nn.Unflatten((2, 3, 5))(flat), flat.reshape(4, 2, 3, 5))
    net = nn.Sequential(nn.Unflatten([2, 3, 5]), nn.Flatten())
    np.testing.assert_array_equal(net(flat), flat)
    with pytest.raises(ValueError, match=r"expected input \[n, 30\]"):
        nn.Unflatten((2, 3, 5))(rng.normal(size=(4, 29)))
    with pytest.raises(ValueError, match="image must be"):
        nn.Unflatten((2, 3))
    with pytest.raises(ValueError, match="stride must be positive"):
        nn.AvgPool2d(2, stride=0)
    with pytest.raises(ValueError, match="padding"):
        nn.AvgPool2d(2, padding=2)
    with pytest.raises(ValueError, match="expected input"):
        nn.GlobalAvgPool2d()(x[0])


def batch_norm_ref(x, weight, bias, mean, var, eps):
    return (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps) * weight[None, :, None, None] \
        + bias[None, :, None, None]


def test_batch_norm2d_statistics(rng):
    bn = nn.BatchNorm2d(3, eps=1e-3, momentum=0.25)
    params = bn.named_parameters()
    params["weight"][...] = rng.normal(size=3)
    params["bias"][...] = rng.normal(size=3)
    x = rng.normal(size=(4, 3, 5, 2)) * 2.0 + 1.5
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    assert bn.training
    y = bn(x)
    np.testing.assert_allclose(y, batch_norm_ref(x, params["weight"], params["bias"], mean, var, 1e-3), rtol=1e-12,
                               atol=1e-12)
    buffers = bn.named_buffers()
    count = 4 * 5 * 2
    np.testing.assert_allclose(buffers["running_mean"], 0.25 * mean, rtol=1e-13)
    np.testing.assert_allclose(buffers["running_var"], 0.75 + 0.25 * var * count / (count - 1), rtol=1e-13)
    bn.eval()
    x2 = rng.normal(size=(2, 3, 5, 2))
    want = batch_norm_ref(x2, params["weight"], params["bias"], buffers["running_mean"], buffers["running_var"], 1e-3)
    np.testing.assert_allclose(bn(x2), want, rtol=1e-12, atol=1e-12)
    plain = nn.BatchNorm2d(2, affine=False, eps=0.0)
    assert plain.named_parameters() == {}
    z = rng.normal(size=(3, 2, 4, 4))
    np.testing.assert_allclose(plain(7.0 * z), plain(z), rtol=1e-10, atol=1e-12)  # eps 0: scale invariant
    with pytest.raises(ValueError, match=r"expected input \[n, 3, H, W\], got \[4, 2, 5, 2\]"):
        nn.BatchNorm2d(3)(x[:, :2])


def test_batch_norm2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ref = torch.nn.BatchNorm2d(3, eps=1e-4, momentum=0.2).double()
    bn = nn.BatchNorm2d(3, eps=1e-4, momentum=0.2)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(rng.normal(size=3)))
        ref.bias.copy_(torch.from_numpy(rng.normal(size=3)))
    bn.load_state_dict({k: v for k, v in ref.state_dict().items() if k != "num_batches_tracked"})
    for _ in range(2):
        x = rng.normal(size=(5, 3, 3, 4))
        np.testing.assert_allclose(bn(x), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    for name, value in bn.named_buffers().items():
        np.testing.assert_allclose(value, getattr(ref, name).numpy(), rtol=1e-13)


def relu(z):
    return np.maximum(z, 0.0)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_residual_conv_block_matches_numpy(rng, padding_mode):
    block = nn.residual_conv_block(3, kernel_size=3, activation="relu", padding_mode=padding_mode, seed=2)
    body = block.body
    assert len(body) == 4 and isinstance(body[1], nn.Conv2d) and isinstance(body[3], nn.Conv2d)
    assert block.projection is None
    x = rng.normal(size=(2, 3, 5, 4))

    def conv(layer, h):
        return conv_ref(h, layer.weight, padding=1, padding_mode=padding_mode) + layer.bias[None, :, None, None]

    want = x + conv(body[3], relu(conv(body[1], relu(x))))
    np.testing.assert_allclose(block(x), want, rtol=1e-12, atol=1e-12)

    bn_block = nn.residual_conv_block(2, kernel_size=5, activation="tanh", batch_norm=True, seed=1)
    assert [type(layer).__name__ for layer in bn_block.body] == ["BatchNorm2d", "Activation", "Conv2d"] * 2
    assert bn_block.body[2].padding == 2
    x = rng.normal(size=(3, 2, 6, 6))
    h = x
    for i in (0, 3):
        h = np.tanh(batch_norm_ref(h, np.ones(2), np.zeros(2), h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3)), 1e-5))
        layer = bn_block.body[i + 2]
        h = conv_ref(h, layer.weight, padding=2) + layer.bias[None, :, None, None]
    np.testing.assert_allclose(bn_block(x), x + h, rtol=1e-11, atol=1e-11)
    with pytest.raises(ValueError, match="kernel size must be odd"):
        nn.residual_conv_block(3, kernel_size=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.residual_conv_block(3, padding_mode="reflect")


def cnn_ref(net, x, image, readout, padding_mode="zeros", activation=relu, scale=None):
    """The CNN formula from the net's own layers: Conv2d at odd positions, then the readout."""
    h = x.reshape((x.shape[0],) + tuple(image))
    for i in range(1, len(net) - 2, 2):
        conv = net[i]
        fan_in = conv.in_channels * conv.kernel_size ** 2
        sw, sb = (1.0, 1.0) if scale is None else (scale[0] / np.sqrt(fan_in), scale[1])
        h = sw * conv_ref(h, conv.weight, padding=conv.kernel_size // 2, padding_mode=padding_mode)
        h = activation(h + sb * conv.bias[None, :, None, None])
    h = h.mean(axis=(2, 3)) if readout == "global_average" else h.reshape(h.shape[0], -1)
    head = net[len(net) - 1]
    sw, sb = (1.0, 1.0) if scale is None else (scale[0] / np.sqrt(h.shape[1]), scale[1])
    return sw * h @ head.weight.T + sb * head.bias


@pytest.mark.parametrize("readout", ["global_average", "flatten"])
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_cnn_matches_numpy(rng, readout, padding_mode):
    net = nn.cnn(image=(2, 5, 4), channels=[3, 4], kernel_size=3, out_features=3, readout=readout,
                 padding_mode=padding_mode, seed=4)
    names = list(net.named_parameters())
    assert names == [f"layers.{i}.{k}" for i in (1, 3, 6) for k in ("weight", "bias")]
    assert isinstance(net[0], nn.Unflatten) and isinstance(net[5], nn.GlobalAvgPool2d if readout == "global_average"
                                                                    else nn.Flatten)
    x = rng.normal(size=(3, 40))
    np.testing.assert_allclose(net(x), cnn_ref(net, x, (2, 5, 4), readout, padding_mode), rtol=1e-12, atol=1e-12)


def test_cnn_options():
    net = nn.cnn(image=(1, 4, 4), channels=[2], kernel_size=1, out_features=2, activation="tanh",
                 parameterization="ntk", sigma_w=1.2, sigma_b=0.1, bias=True, dtype="float64", seed=3)
    x = np.random.default_rng(0).normal(size=(5, 16))
    np.testing.assert_allclose(net(x), cnn_ref(net, x, (1, 4, 4), "global_average", activation=np.tanh,
                                               scale=(1.2, 0.1)), rtol=1e-12, atol=1e-12)
    assert net[1].parameterization == "ntk" and net[1].kernel_size == 1
    no_bias = nn.cnn(channels=[2], bias=False, dtype="float32")
    assert [k.split(".")[-1] for k in no_bias.named_parameters()] == ["weight", "weight"]
    assert no_bias(np.ones((1, 64), dtype=np.float32)).shape == (1, 10)
    with pytest.raises(TypeError):
        nn.cnn((1, 8, 8))  # keyword arguments only
    with pytest.raises(ValueError, match='readout: expected "global_average" or "flatten", got "max"'):
        nn.cnn(readout="max")
    with pytest.raises(ValueError, match='padding_mode: expected "zeros" or "circular", got "reflect"'):
        nn.cnn(padding_mode="reflect")
    with pytest.raises(ValueError, match="kernel size must be odd"):
        nn.cnn(kernel_size=4)
    with pytest.raises(ValueError, match="channels is empty"):
        nn.cnn(channels=[])
    with pytest.raises(ValueError, match="image must be"):
        nn.cnn(image=(8, 8))


def test_conv_layer_errors_name_the_shapes(rng):
    with pytest.raises(ValueError, match=r"Conv2d\(3 -> 4, kernel 3, bias\): expected input \[n, 3, H, W\], "
                                         r"got \[2, 2, 5, 5\]"):
        nn.Conv2d(3, 4, 3)(rng.normal(size=(2, 2, 5, 5)))
    with pytest.raises(ValueError, match='padding_mode: expected "zeros" or "circular", got "same"'):
        nn.Conv2d(3, 4, 3, padding_mode="same")
    with pytest.raises(ValueError, match="channels and kernel size must be positive"):
        nn.Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match="stride >= 1"):
        nn.Conv2d(1, 4, 3, stride=0)
    with pytest.raises(TypeError, match="dtype"):
        nn.Conv2d(1, 4, 3, dtype="int64")
    with pytest.raises(ValueError, match="parameterization"):
        nn.Conv2d(1, 4, 3, parameterization="mup")
    with pytest.raises(ValueError, match=r"Unflatten\(\[1, 8, 8\]\): expected input \[n, 64\], got \[2, 63\]"):
        nn.cnn(image=(1, 8, 8))(rng.normal(size=(2, 63)))
    with pytest.raises(TypeError):
        nn.Conv2d(1, 2, 3)(rng.normal(size=(1, 1, 4, 4)).astype(np.float32))


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
