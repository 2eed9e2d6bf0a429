"""theta.nn functional forms on arrays (losses, activations, accuracy), predict and evaluate,
theta.nn.init, and the data sets with their lookup, splits and standardisation."""

import gzip
from pathlib import Path
from math import erf

import numpy as np
import pytest

from theta import nn


def log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_match_numpy(rng, reduction):
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    pred, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    got = nn.mse_loss(pred, target, reduction=reduction)
    np.testing.assert_allclose(got, reduce((pred - target) ** 2), rtol=1e-13)
    assert isinstance(got, float) == (reduction != "none")
    logits, labels = 10 * rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    np.testing.assert_allclose(nn.cross_entropy(logits, labels, reduction=reduction),
                               reduce(-log_softmax(logits)[np.arange(6), labels]), rtol=1e-12)
    z, t = 5 * rng.normal(size=7), rng.integers(0, 2, size=7).astype(np.float64)
    np.testing.assert_allclose(nn.binary_logistic_loss(z, t, reduction=reduction),
                               reduce(np.logaddexp(0, z) - t * z), rtol=1e-12)


def test_loss_errors(rng):
    with pytest.raises(ValueError, match='reduction: expected "mean", "sum" or "none", got "avg"'):
        nn.mse_loss(np.zeros(3), np.zeros(3), reduction="avg")
    with pytest.raises(ValueError):
        nn.mse_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(IndexError):
        nn.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError):
        nn.mse_loss(np.zeros(3, dtype=np.float16), np.zeros(3))


def test_activations_match_numpy(rng):
    x = 3 * rng.normal(size=(4, 5))
    np.testing.assert_allclose(nn.activate(x, "tanh"), np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(nn.activate(x, "leaky_relu", negative_slope=0.3), np.where(x > 0, x, 0.3 * x))
    np.testing.assert_allclose(nn.leaky_relu(x, negative_slope=0.1), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(nn.softplus(x), np.logaddexp(0, x), rtol=1e-13)
    phi = np.vectorize(lambda v: 0.5 * (1 + erf(v / np.sqrt(2))))
    np.testing.assert_allclose(nn.gelu(x), x * phi(x), rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="valid: identity, relu"):
        nn.activate(x, "swish")


def test_accuracy_predict_and_evaluate(rng):
    logits = rng.normal(size=(20, 3))
    labels = rng.integers(0, 3, size=20)
    assert nn.accuracy(logits, labels) == pytest.approx(np.mean(logits.argmax(1) == labels))
    net = nn.Sequential(nn.Linear(4, 3, seed=1), nn.BatchNorm1d(3))
    net(rng.normal(size=(8, 4)))  # training-mode call: running statistics move
    x = rng.normal(size=(20, 4))
    buffers = {k: v.copy() for k, v in net.named_buffers().items()}
    out = nn.predict(net, x)
    assert net.training  # the mode is restored
    for k, v in net.named_buffers().items():  # eval mode: no buffer written
        np.testing.assert_array_equal(v, buffers[k])
    lin = net[0]
    rm, rv = buffers["layers.1.running_mean"], buffers["layers.1.running_var"]
    bn = net.named_parameters()
    want = ((x @ lin.weight.T + lin.bias) - rm) / np.sqrt(rv + 1e-5) * bn["layers.1.weight"] + bn["layers.1.bias"]
    np.testing.assert_allclose(out, want, rtol=1e-12)
    result = nn.evaluate(net, x, labels)
    assert result["loss"] == pytest.approx(-np.mean(log_softmax(want)[np.arange(20), labels]), rel=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(want.argmax(1) == labels))
    targets = rng.normal(size=(20, 3))
    assert nn.evaluate(net, x, targets, loss="mse") == {"loss": pytest.approx(np.mean((want - targets) ** 2))}


def test_init_schemes():
    shape = (200, 300)  # fan_out 200, fan_in 300
    assert nn.init.fans(shape) == (300.0, 200.0)
    cases = {
        "lecun_normal": 1 / 300, "lecun_uniform": 1 / 300, "he_normal": 2 / 300, "he_uniform": 2 / 300,
        "xavier_normal": 2 / 500, "xavier_uniform": 2 / 500,
    }
    for name, variance in cases.items():
        w = getattr(nn.init, name)(shape, seed=3)
        assert w.shape == shape and w.dtype == np.float64
        assert w.var() == pytest.approx(variance, rel=0.03), name
        np.testing.assert_array_equal(w, getattr(nn.init, name)(shape, seed=3))
        if name.endswith("uniform"):
            assert np.abs(w).max() <= np.sqrt(3 * variance)
    assert nn.init.lecun_normal((3, 4), dtype="float32").dtype == np.float32
    q = nn.init.orthogonal((5, 3), seed=1, gain=2.0)
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(nn.init.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(nn.init.constant((2, 2), 1.5), np.full((2, 2), 1.5))


def read_digits_csv(path):
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    return rows[:, :64], rows[:, 64].astype(np.int64)


def test_load_digits_and_iris_match_the_files():
    x, y = nn.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float64 and y.shape == (1797,) and y.dtype == np.int64
    want_x, want_y = read_digits_csv(nn.data_file("digits.csv.gz"))
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    xi, yi = nn.load_iris()
    rows = np.loadtxt(nn.data_file("iris.csv"), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(xi, rows[:, :4])
    np.testing.assert_array_equal(yi, rows[:, 4].astype(np.int64))


def test_data_paths_and_the_environment_override(tmp_path, monkeypatch):
    rows = np.hstack([np.arange(12.0).reshape(3, 4), [[0], [1], [0]]])
    iris = tmp_path / "small_iris.csv"
    iris.write_text("3,4,a,b\n" + "\n".join(",".join(f"{v:g}" for v in r) for r in rows) + "\n")
    x, y = nn.load_iris(path=iris)
    np.testing.assert_array_equal(x, rows[:, :4])
    np.testing.assert_array_equal(y, [0, 1, 0])
    monkeypatch.setenv("THETA_DATA_DIR", str(tmp_path))
    assert nn.default_data_dir() == str(tmp_path)
    with pytest.raises(ValueError, match=r"digits.csv.gz not found.*THETA_DATA_DIR"):
        nn.load_digits()
    (tmp_path / "iris.csv").write_text(iris.read_text())
    np.testing.assert_array_equal(nn.load_iris()[0], rows[:, :4])
    with pytest.raises(ValueError, match="cannot open"):
        nn.load_digits(path=tmp_path / "nope.csv")


def test_installed_layout_is_found_beside_the_package(tmp_path, monkeypatch):
    """An installed tree: <prefix>/lib/python3.X/dist-packages/theta and <prefix>/share/theta."""
    import theta.nn as pynn
    package = tmp_path / "lib" / "python3.11" / "dist-packages" / "theta"
    package.mkdir(parents=True)
    data = tmp_path / "share" / "theta"
    data.mkdir(parents=True)
    (data / "iris.csv").write_text("2,4,a,b\n1,2,3,4,0\n5,6,7,8,1\n")
    monkeypatch.delenv("THETA_DATA_DIR", raising=False)
    monkeypatch.setattr(pynn, "__file__", str(package / "nn.py"))
    x, y = pynn.load_iris()
    np.testing.assert_array_equal(x, [[1, 2, 3, 4], [5, 6, 7, 8]])
    monkeypatch.setenv("THETA_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="not found"):
        pynn.load_iris()


def test_train_test_split_and_standardizer(rng):
    x, y = rng.normal(size=(20, 3)), np.arange(20)
    x_train, x_test, y_train, y_test = nn.train_test_split(x, y, test_fraction=0.25, seed=4)
    assert x_test.shape == (5, 3) and x_train.shape == (15, 3)
    assert sorted(np.concatenate([y_train, y_test])) == list(range(20))
    np.testing.assert_array_equal(x_train, x[y_train])
    np.testing.assert_array_equal(x_test, x[y_test])
    again = nn.train_test_split(x, y, test_fraction=0.25, seed=4)
    np.testing.assert_array_equal(again[3], y_test)
    with pytest.raises(ValueError, match="same number of samples"):
        nn.train_test_split(x, y[:3])
    s = nn.Standardizer.fit(x_train)
    np.testing.assert_allclose(s.mean, x_train.mean(0), rtol=1e-14)
    np.testing.assert_allclose(s.std, x_train.std(0), rtol=1e-13)
    np.testing.assert_allclose(s.apply(x_test), (x_test - x_train.mean(0)) / x_train.std(0), rtol=1e-12)
    with pytest.raises(ValueError, match="feature shape"):
        s.apply(x[:, :2])


def test_the_build_tree_reads_the_source_trees_data(monkeypatch):
    build_tree = pytest.importorskip("theta._build_tree")
    monkeypatch.delenv("THETA_DATA_DIR", raising=False)
    assert nn.default_data_dir() == build_tree.DATA_DIR
    assert nn.data_file("iris.csv") == str(Path(build_tree.DATA_DIR) / "iris.csv")
    with pytest.raises(ValueError, match="nope.csv not found"):
        nn.data_file("nope.csv")
