"""theta.nn layers and builders: forward passes against NumPy references built from the layers'
own parameters, containers, option parsing and errors."""

import numpy as np
import pytest

from theta import nn

ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "softplus": lambda z: np.logaddexp(0.0, z),
}


def mlp_ref(x, params, activation, n_layers, scale_w=None, scale_b=None):
    """The MLP formula from named_parameters(): Linear layers at even positions."""
    h = x
    for l in range(n_layers):
        w = params[f"layers.{2 * l}.weight"]
        b = params.get(f"layers.{2 * l}.bias")
        sw = 1.0 if scale_w is None else scale_w / np.sqrt(h.shape[1])
        h = sw * (h @ w.T)
        if b is not None:
            h = h + (1.0 if scale_b is None else scale_b) * b
        if l < n_layers - 1:
            h = ACTIVATIONS[activation](h)
    return h


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softplus", "identity"])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_forward_matches_numpy(rng, activation, bias):
    net = nn.mlp([5, 7, 6, 3], activation=activation, bias=bias, seed=3)
    params = net.named_parameters()
    assert list(params) == [f"layers.{i}.{k}" for i in (0, 2, 4) for k in (("weight", "bias") if bias else ("weight",))]
    x = rng.normal(size=(9, 5))
    np.testing.assert_allclose(net(x), mlp_ref(x, params, activation, 3), rtol=1e-13, atol=1e-13)


def test_ntk_mlp_forward_matches_numpy(rng):
    net = nn.mlp([4, 16, 2], activation="tanh", parameterization="ntk", sigma_w=1.3, sigma_b=0.2, seed=5)
    x = rng.normal(size=(6, 4))
    want = mlp_ref(x, net.named_parameters(), "tanh", 2, scale_w=1.3, scale_b=0.2)
    np.testing.assert_allclose(net(x), want, rtol=1e-13, atol=1e-13)
    # NTK parameterisation draws N(0, 1) weights; standard draws U(-1/sqrt(in), 1/sqrt(in)).
    assert abs(net[0].weight.std() - 1.0) < 0.3
    std_net = nn.mlp([4, 16, 2], seed=5)
    assert np.abs(std_net[0].weight).max() <= 1 / np.sqrt(4)


def test_mlp_seed_and_dtype():
    a, b, c = nn.mlp([3, 4, 2], seed=1), nn.mlp([3, 4, 2], seed=1), nn.mlp([3, 4, 2], seed=2)
    np.testing.assert_array_equal(a[0].weight, b[0].weight)
    assert not np.array_equal(a[0].weight, c[0].weight)
    f32 = nn.mlp([3, 4, 2], dtype="float32")
    assert f32[0].weight.dtype == np.float32
    x = np.ones((2, 3), dtype=np.float32)
    assert f32(x).dtype == np.float32


def test_bad_option_names_raise_value_error():
    with pytest.raises(ValueError, match="unknown activation 'rleu'"):
        nn.mlp([2, 2], activation="rleu")
    with pytest.raises(ValueError, match='parameterization: expected "standard" or "ntk", got "mup"'):
        nn.mlp([2, 2], parameterization="mup")
    with pytest.raises(ValueError, match="widths needs the input and output"):
        nn.mlp([2])
    with pytest.raises(ValueError, match="sizes must be positive"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(2, 3, dtype="float16")
    with pytest.raises(ValueError):
        nn.Activation("nope")


def test_linear_layer_and_its_properties(rng):
    layer = nn.Linear(3, 2, seed=4)
    assert isinstance(layer, nn.Module)
    assert (layer.in_features, layer.out_features, layer.parameterization) == (3, 2, "standard")
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    assert layer.weight_scale == 1.0 and layer.bias_scale == 1.0
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(layer(x), x @ layer.weight.T + layer.bias, rtol=1e-14)
    # weight is a view: writes change the layer.
    layer.weight[...] = 0.0
    np.testing.assert_array_equal(layer(x), np.broadcast_to(layer.bias, (4, 2)))
    ntk = nn.Linear(4, 2, bias=False, parameterization="ntk", sigma_w=2.0, sigma_b=0.5)
    assert ntk.bias is None
    assert ntk.weight_scale == pytest.approx(2.0 / np.sqrt(4)) and ntk.parameterization == "ntk"
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(ntk(x), ntk.weight_scale * x @ ntk.weight.T, rtol=1e-14)
    with pytest.raises(ValueError, match=r"\[3, 5\]|input"):
        layer(rng.normal(size=(3, 5)))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_layer(rng, name):
    act = nn.Activation(name)
    assert act.name == name
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(act(x), ACTIVATIONS[name](x), rtol=1e-13, atol=1e-15)


def test_leaky_relu_activation_slope(rng):
    x = rng.normal(size=(5, 2))
    np.testing.assert_allclose(nn.Activation("leaky_relu", negative_slope=0.2)(x), np.where(x > 0, x, 0.2 * x))


def test_sequential_from_args_or_list_indexing_and_len(rng):
    a, r, b = nn.Linear(3, 4, seed=1), nn.Activation("relu"), nn.Linear(4, 2, seed=2)
    s1, s2 = nn.Sequential(a, r, b), nn.Sequential([a, r, b])
    assert len(s1) == 3 and len(nn.Sequential()) == 0
    assert s1[0] is a and s1[2] is b and s1[-1] is b and s1[-3] is a
    assert isinstance(s1[1], nn.Activation)
    with pytest.raises(IndexError):
        s1[3]
    with pytest.raises(IndexError):
        s1[-4]
    assert [type(m) for m in s1] == [nn.Linear, nn.Activation, nn.Linear]
    x = rng.normal(size=(5, 3))
    want = np.maximum(x @ a.weight.T + a.bias, 0) @ b.weight.T + b.bias
    np.testing.assert_allclose(s1(x), want, rtol=1e-13)
    np.testing.assert_array_equal(s1(x), s2(x))
    np.testing.assert_allclose(s1.forward_prefix(x, 2), np.maximum(x @ a.weight.T + a.bias, 0), rtol=1e-13)
    with pytest.raises(IndexError):
        s1.forward_prefix(x, 4)
    head = s1[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is a and head[1] is r
    np.testing.assert_array_equal(head(x), s1.forward_prefix(x, 2))
    assert [m is n for m, n in zip(s1[::-1], [b, r, a])] == [True] * 3 and len(s1[5:]) == 0
    grown = nn.Sequential(a)
    assert grown.append(r).append(b) is grown and len(grown) == 3
    np.testing.assert_array_equal(grown(x), s1(x))
    with pytest.raises(TypeError, match="layer 1"):
        nn.Sequential([a, "relu"])
    with pytest.raises(TypeError):
        nn.Sequential(3)


def test_children_built_in_cpp_keep_their_class_and_outlive_the_container(rng):
    net = nn.mlp([3, 4, 2], seed=0)
    first = net[0]
    assert isinstance(first, nn.Linear) and isinstance(net[1], nn.Activation)
    x = rng.normal(size=(2, 3))
    want = x @ first.weight.T + first.bias
    del net
    np.testing.assert_allclose(first(x), want)
    # A child shared with a second container is the same module, not a copy.
    net = nn.mlp([3, 4, 2], seed=0)
    other = nn.Sequential(net[0])
    net[0].weight[0, 0] = 42.0
    assert other[0].weight[0, 0] == 42.0


def test_batchnorm1d_train_and_eval_match_numpy(rng):
    bn = nn.BatchNorm1d(3, eps=1e-5, momentum=0.1)
    assert set(bn.named_parameters()) == {"weight", "bias"}
    assert set(bn.named_buffers()) == {"running_mean", "running_var"}
    bn.named_parameters()["weight"][...] = [1.0, 2.0, 0.5]
    bn.named_parameters()["bias"][...] = [0.0, -1.0, 3.0]
    x = rng.normal(loc=2.0, size=(8, 3))
    mean, var = x.mean(0), x.var(0)
    w, b = bn.named_parameters()["weight"], bn.named_parameters()["bias"]
    np.testing.assert_allclose(bn(x), (x - mean) / np.sqrt(var + 1e-5) * w + b, rtol=1e-12)
    np.testing.assert_allclose(bn.named_buffers()["running_mean"], 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.named_buffers()["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)
    bn.eval()
    assert not bn.training
    rm, rv = bn.named_buffers()["running_mean"].copy(), bn.named_buffers()["running_var"].copy()
    np.testing.assert_allclose(bn(x), (x - rm) / np.sqrt(rv + 1e-5) * w + b, rtol=1e-12)
    bn.train()
    assert bn.training
    plain = nn.BatchNorm1d(3, affine=False)
    assert plain.named_parameters() == {}


def test_layernorm_matches_numpy(rng):
    ln = nn.LayerNorm(4, eps=1e-6)
    x = rng.normal(size=(5, 4))
    want = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(ln(x), want, rtol=1e-12, atol=1e-14)
    assert nn.LayerNorm(4, affine=False).parameter_count == 0


def test_identity_flatten_residual(rng):
    x = rng.normal(size=(3, 2, 4))
    np.testing.assert_array_equal(nn.Identity()(x), x)
    np.testing.assert_array_equal(nn.Flatten()(x), x.reshape(3, 8))
    body = nn.Sequential(nn.Activation("tanh"), nn.Linear(4, 4, seed=1))
    res = nn.Residual(body)
    assert res.body is body and res.projection is None
    h = rng.normal(size=(5, 4))
    lin = body[1]
    np.testing.assert_allclose(res(h), h + np.tanh(h) @ lin.weight.T + lin.bias, rtol=1e-13)
    proj = nn.Linear(4, 4, bias=False, seed=2)
    res2 = nn.Residual(body, projection=proj)
    assert res2.projection is proj
    assert list(res2.named_parameters()) == ["body.layers.1.weight", "body.layers.1.bias", "projection.weight"]
    np.testing.assert_allclose(res2(h), h @ proj.weight.T + np.tanh(h) @ lin.weight.T + lin.bias, rtol=1e-13)
    with pytest.raises(TypeError, match="Residual: body"):
        nn.Residual("x")


def test_residual_mlp_matches_numpy(rng):
    net = nn.residual_mlp(in_features=3, width=5, out_features=2, blocks=2, activation="relu", seed=7)
    p = net.named_parameters()
    assert net.parameter_count == (3 + 1) * 5 + 2 * (5 + 1) * 5 + (5 + 1) * 2
    assert isinstance(net[1], nn.Residual)
    x = rng.normal(size=(4, 3))
    relu = ACTIVATIONS["relu"]
    h = x @ p["layers.0.weight"].T + p["layers.0.bias"]
    for blk in (1, 2):
        h = h + relu(h) @ p[f"layers.{blk}.body.layers.1.weight"].T + p[f"layers.{blk}.body.layers.1.bias"]
    want = relu(h) @ p["layers.4.weight"].T + p["layers.4.bias"]
    np.testing.assert_allclose(net(x), want, rtol=1e-12, atol=1e-14)


def test_module_base_methods_on_layers(rng):
    net = nn.mlp([2, 3, 1], seed=0)
    copy = net.clone()
    assert isinstance(copy, nn.Sequential)
    copy[0].weight[...] = 0.0
    assert not np.all(net[0].weight == 0.0)
    assert "Linear(2 -> 3" in net.describe() and repr(net).startswith("theta.nn.Sequential")
