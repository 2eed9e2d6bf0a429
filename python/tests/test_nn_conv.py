"""theta.nn's Conv2d, pooling, Unflatten, BatchNorm2d, residual_conv_block and cnn against NumPy references
built from their own parameters (and torch where it imports), and their errors."""

import numpy as np
import pytest

import theta.autograd as ag
from theta import nn
from theta.autograd import Var
from grad_helpers import finite_difference
from conv_helpers import avg_pool_ref, conv_ref


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
