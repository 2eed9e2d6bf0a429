"""Module.state_dict / load_state_dict (theta's names and PyTorch's), named_grads, checkpoints
and .npz archives."""

import numpy as np
import pytest

from theta import nn


def torch_style_state(rng, widths, prefix="", bias=True, dtype=np.float64):
    """A state_dict laid out as torch.nn.Sequential(Linear, ReLU, Linear, ...) writes it: Linear k
    at Sequential index 2k, weight [out, in]; built with NumPy."""
    state = {}
    for l, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        state[f"{prefix}{2 * l}.weight"] = rng.normal(size=(o, i)).astype(dtype)
        if bias:
            state[f"{prefix}{2 * l}.bias"] = rng.normal(size=(o,)).astype(dtype)
    return state


def relu_mlp_ref(x, state, prefix, n_layers):
    h = x
    for l in range(n_layers):
        h = h @ state[f"{prefix}{2 * l}.weight"].T + state[f"{prefix}{2 * l}.bias"]
        if l < n_layers - 1:
            h = np.maximum(h, 0)
    return h


def test_state_dict_is_a_copy_of_parameters_and_buffers():
    net = nn.Sequential(nn.Linear(3, 4, seed=1), nn.BatchNorm1d(4), nn.Linear(4, 2, seed=2))
    state = net.state_dict()
    assert list(state) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                           "layers.2.weight", "layers.2.bias", "layers.1.running_mean", "layers.1.running_var"]
    for name, value in net.named_parameters().items():
        np.testing.assert_array_equal(state[name], value)
        assert not np.shares_memory(state[name], value)
    state["layers.0.weight"][...] = 0.0
    assert not np.all(net[0].weight == 0.0)


def test_load_state_dict_theta_names_round_trip(rng):
    src = nn.Sequential(nn.Linear(3, 4, seed=1), nn.BatchNorm1d(4), nn.Linear(4, 2, seed=2))
    src(rng.normal(size=(6, 3)))  # moves the running statistics away from their initial values
    dst = nn.Sequential(nn.Linear(3, 4, seed=5), nn.BatchNorm1d(4), nn.Linear(4, 2, seed=6))
    assert dst.load_state_dict(src.state_dict()) == ([], [])
    for (name, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    src.eval(), dst.eval()
    x = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(src(x), dst(x))


@pytest.mark.parametrize("prefix", ["", "layers.", "net.body."])
def test_load_pytorch_named_state_dict_into_an_mlp(rng, prefix):
    widths = [4, 6, 5, 3]
    state = torch_style_state(rng, widths, prefix)
    net = nn.mlp(widths, seed=0)
    assert net.load_state_dict(state) == ([], [])
    for l in range(3):
        np.testing.assert_array_equal(net[2 * l].weight, state[f"{prefix}{2 * l}.weight"])
        np.testing.assert_array_equal(net[2 * l].bias, state[f"{prefix}{2 * l}.bias"])
    x = rng.normal(size=(7, 4))
    np.testing.assert_allclose(net(x), relu_mlp_ref(x, state, prefix, 3), rtol=1e-13, atol=1e-14)


def test_pytorch_names_without_bias_and_in_a_sequential_of_linear_layers_only(rng):
    state = torch_style_state(rng, [3, 3, 3], bias=False)
    state = {"0.weight": state["0.weight"], "1.weight": state["2.weight"]}  # torch Sequential(Linear, Linear)
    net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    net.load_state_dict(state)
    np.testing.assert_array_equal(net[1].weight, state["1.weight"])


def test_shape_mismatch_names_tensor_and_both_shapes(rng):
    net = nn.mlp([4, 6, 3])
    state = net.state_dict()
    state["layers.2.weight"] = np.zeros((6, 3))
    with pytest.raises(ValueError, match=r"'layers.2.weight' has shape \[6, 3\] but the model's 'layers.2.weight' "
                                         r"has shape \[3, 6\]"):
        net.load_state_dict(state)
    torch_state = torch_style_state(rng, [4, 6, 3])
    torch_state["2.weight"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r'"2.weight" is \[3, 5\] but Linear layer 1 of the model is \[3, 6\]'):
        net.load_state_dict(torch_state)
    torch_state = torch_style_state(rng, [4, 6, 3])
    torch_state["0.bias"] = np.zeros(5)
    with pytest.raises(ValueError, match=r'"0.bias" is \[5\]'):
        net.load_state_dict(torch_state)


def test_nothing_changes_when_loading_fails(rng):
    net = nn.mlp([4, 6, 3], seed=1)
    before = net.state_dict()
    state = torch_style_state(rng, [4, 6, 3])
    state["2.bias"] = np.zeros(4)  # the last tensor checked is wrong: the first must not have been copied
    with pytest.raises(ValueError):
        net.load_state_dict(state)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_missing_unexpected_and_strict(rng):
    net = nn.mlp([2, 3, 1], seed=1)
    state = net.state_dict()
    del state["layers.2.bias"]
    state["layers.9.weight"] = np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"missing: 'layers.2.bias'; unexpected: 'layers.9.weight'"):
        net.load_state_dict(state)
    state["layers.0.weight"] = np.full((3, 2), 7.0)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["layers.2.bias"], ["layers.9.weight"])
    assert np.all(net[0].weight == 7.0)
    torch_extra = torch_style_state(rng, [2, 3, 1])
    torch_extra["running_mean"] = np.zeros(3)
    with pytest.raises(ValueError, match='"running_mean"'):
        net.load_state_dict(torch_extra)


def test_pytorch_names_into_a_model_that_is_not_an_mlp(rng):
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"none of the names .*'0.weight'.* MLPs .*BatchNorm1d"):
        net.load_state_dict(torch_style_state(rng, [2, 3, 1]))


def test_wrong_dtype_is_a_type_error_with_a_hint(rng):
    net = nn.mlp([4, 6, 3])
    state = {k: v.astype(np.float32) for k, v in net.state_dict().items()}
    with pytest.raises(TypeError, match=r"'layers.0.weight' is float32 but the model's 'layers.0.weight' is "
                                        r"float64.*astype\(numpy.float64\)"):
        net.load_state_dict(state)
    with pytest.raises(TypeError, match=r"'0.weight' is float32"):
        net.load_state_dict(torch_style_state(rng, [4, 6, 3], dtype=np.float32))
    with pytest.raises(TypeError, match="'layers.0.weight'"):
        net.load_state_dict({"layers.0.weight": np.zeros((6, 4), dtype=np.float16)})
    with pytest.raises(TypeError, match="keys must be str"):
        net.load_state_dict({0: np.zeros(2)})


def test_values_go_through_numpy_asarray(rng):
    class ArrayLike:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None):
            return self.a

    net = nn.mlp([2, 2], seed=0)
    state = {k: ArrayLike(v + 1.0) for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    np.testing.assert_array_equal(net[0].weight, state["layers.0.weight"].a)
    # Non-contiguous values (a transposed view) are copied correctly.
    w = rng.normal(size=(2, 2))
    net.load_state_dict({"layers.0.weight": w.T, "layers.0.bias": np.zeros(2)})
    np.testing.assert_array_equal(net[0].weight, w.T)


def test_load_a_real_torch_mlp_state_dict():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3)).double()
    net = nn.mlp([5, 16, 8, 3], seed=9)
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(1).normal(size=(11, 5))
    with torch.no_grad():
        want = tnet(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), want, rtol=1e-12, atol=1e-15)
    # Tensors go through numpy.asarray too, and a module with a named Sequential attribute.

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))

        def forward(self, x):
            return self.layers(x)

    wrapped = Wrapped().double()
    net2 = nn.mlp([5, 4, 2], activation="tanh")
    net2.load_state_dict(wrapped.state_dict())
    with torch.no_grad():
        want = wrapped(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net2(x), want, rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="float32"):
        net.load_state_dict(torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8),
                                                torch.nn.ReLU(), torch.nn.Linear(8, 3)).state_dict())


def test_named_grads_after_loss_backward(rng):
    net = nn.Sequential(nn.Linear(3, 2, bias=False, seed=1))
    assert net.named_grads() == {"layers.0.weight": None}
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    loss = nn.loss_backward(net, x, y, loss="mse")
    w = net[0].weight
    r = x @ w.T - y
    assert loss == pytest.approx(np.mean(r ** 2), rel=1e-14)
    np.testing.assert_allclose(net.named_grads()["layers.0.weight"], 2 * r.T @ x / r.size, rtol=1e-13)
    net.zero_grad()
    assert net.named_grads()["layers.0.weight"] is None or not np.any(net.named_grads()["layers.0.weight"])


def test_checkpoint_round_trip_is_bitwise(tmp_path, rng):
    x, y = rng.normal(size=(16, 4)), rng.normal(size=(16, 2))
    net = nn.Sequential(nn.Linear(4, 8, seed=1), nn.BatchNorm1d(8), nn.Activation("tanh"), nn.Linear(8, 2, seed=2))
    opt = nn.Adam(net, lr=1e-2)
    for _ in range(3):
        nn.train_step(net, opt, x, y)
    path = tmp_path / "ckpt.npz"
    nn.save_checkpoint(path, net, opt)
    assert not list(tmp_path.glob("*.tmp*"))  # the atomic write leaves no temporary behind
    with np.load(path) as archive:
        np.testing.assert_array_equal(archive["param/layers.0.weight"], net[0].weight)
        np.testing.assert_array_equal(archive["buffer/layers.1.running_mean"], net.named_buffers()["layers.1.running_mean"])
    other = nn.Sequential(nn.Linear(4, 8, seed=5), nn.BatchNorm1d(8), nn.Activation("tanh"), nn.Linear(8, 2, seed=6))
    other_opt = nn.Adam(other, lr=1e-2)
    nn.load_checkpoint(str(path), other, other_opt)
    for (name, a), b in zip(net.state_dict().items(), other.state_dict().values()):
        assert np.array_equal(a, b), name
    for (key, a), b in zip(opt.state_dict().items(), other_opt.state_dict().values()):
        assert np.array_equal(a, b), key
    # Training on from the restored state repeats the original run bit for bit.
    for _ in range(2):
        assert nn.train_step(net, opt, x, y) == nn.train_step(other, other_opt, x, y)
    np.testing.assert_array_equal(net(x), other(x))


def test_checkpoint_errors(tmp_path):
    net = nn.mlp([2, 3, 1])
    nn.save_checkpoint(tmp_path / "a.npz", net)
    wrong = nn.mlp([2, 4, 1])
    before = wrong.state_dict()
    with pytest.raises(ValueError, match="layers.0.weight"):
        nn.load_checkpoint(tmp_path / "a.npz", wrong)
    np.testing.assert_array_equal(wrong[0].weight, before["layers.0.weight"])
    # theta reports a file it cannot read as a FormatError (ValueError), naming the path.
    with pytest.raises(ValueError, match="cannot open .*missing.npz"):
        nn.load_checkpoint(tmp_path / "missing.npz", net)
    with pytest.raises(OSError):
        nn.save_checkpoint(tmp_path / "no" / "such" / "dir.npz", net)
    with pytest.raises(ValueError, match="another model"):
        nn.save_checkpoint(tmp_path / "b.npz", net, nn.SGD(wrong))
    with pytest.raises(TypeError, match="path"):
        nn.save_checkpoint(3, net)


def test_npz_round_trip(tmp_path, rng):
    arrays = {"w": rng.normal(size=(3, 2)), "labels": np.arange(4), "x32": rng.normal(size=5).astype(np.float32)}
    nn.save_npz(tmp_path / "t.npz", arrays)
    with np.load(tmp_path / "t.npz") as archive:
        for k, v in arrays.items():
            np.testing.assert_array_equal(archive[k], v)
    np.savez(tmp_path / "np.npz", **arrays)
    back = nn.load_npz(tmp_path / "np.npz")
    assert list(back) == list(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)
