"""theta.theory kernels: empirical NTKs against J J^T from NumPy, the tiled engine against the plain
one, per-sample gradients against their NumPy form, analytic kernels and NTK regression."""

import os

import numpy as np
import pytest

import theta
import theta.theory as th
from theory_helpers import flat_jacobian, forward, mlp, ntk_from_jacobians, rel_err


@pytest.fixture
def net(rng):
    model, sd = mlp(rng, [4, 24, 16, 3])
    return model, sd


@pytest.mark.parametrize("method", ["structured", "jacobian"])
def test_ntk_full_equals_jacobian_gram(net, rng, method):
    model, _ = net
    x1 = rng.normal(size=(7, 4))
    x2 = rng.normal(size=(5, 4))
    j1, j2 = flat_jacobian(model, x1), flat_jacobian(model, x2)
    assert rel_err(th.ntk(model, x1, x2, method=method), ntk_from_jacobians(j1, j2)) < 1e-12
    assert rel_err(th.ntk(model, x1, method=method), ntk_from_jacobians(j1, j1)) < 1e-12


def test_parameter_jacobians_match_finite_differences(net, rng):
    model, sd = net
    x = rng.normal(size=(3, 4))
    jac = th.parameter_jacobians(model, x)
    assert list(jac) == list(model.named_parameters())
    name = "layers.0.weight"
    eps = 1e-6
    for idx in [(0, 0), (5, 2), (23, 3)]:
        plus = {k: v.copy() for k, v in sd.items()}
        minus = {k: v.copy() for k, v in sd.items()}
        plus["0.weight"][idx] += eps
        minus["0.weight"][idx] -= eps
        fd = (forward(plus, x) - forward(minus, x)) / (2 * eps)  # [n, O]
        np.testing.assert_allclose(jac[name][(slice(None), slice(None)) + idx], fd, rtol=1e-7, atol=1e-9)


def test_methods_and_forms_agree(net, rng):
    model, _ = net
    x1 = rng.normal(size=(9, 4))
    x2 = rng.normal(size=(6, 4))
    full = th.ntk(model, x1, x2)
    assert rel_err(th.ntk(model, x1, x2, method="jacobian"), full) < 1e-12
    trace = th.ntk(model, x1, x2, form="trace")
    assert rel_err(trace, np.einsum("ijoo->ij", full)) < 1e-12
    assert rel_err(th.ntk(model, x1, x2, form="trace", method="jacobian"), trace) < 1e-12
    self_full = th.ntk(model, x1)
    diag = th.ntk(model, x1, form="diagonal")
    assert diag.shape == (9, 3, 3)
    assert rel_err(diag, np.stack([self_full[i, i] for i in range(9)])) < 1e-12
    assert rel_err(th.ntk(model, x1, form="diagonal", method="jacobian"), diag) < 1e-12


def test_matrix_form_of_a_one_output_model(rng):
    model, _ = mlp(rng, [3, 10, 1])
    x = rng.normal(size=(6, 3))
    full = th.ntk(model, x)
    np.testing.assert_array_equal(th.ntk(model, x, form="matrix"), full[:, :, 0, 0])
    with pytest.raises(ValueError):
        th.ntk(mlp(rng, [3, 4, 2])[0], x, form="matrix")


@pytest.mark.parametrize("form", ["trace", "full", "output"])
def test_tiled_equals_plain_and_is_independent_of_threads(net, rng, form):
    model, _ = net
    x1 = rng.normal(size=(11, 4))
    x2 = rng.normal(size=(7, 4))
    full = th.ntk(model, x1, x2)
    expected = {"trace": np.einsum("ijoo->ij", full), "full": full, "output": full[:, :, 2, 2]}[form]
    one = th.ntk_tiled(model, x1, x2, tile=4, form=form, output=2, threads=1)
    assert rel_err(one, expected) < 1e-12
    two = th.ntk_tiled(model, x1, x2, tile=4, form=form, output=2, threads=2)
    np.testing.assert_array_equal(one, two)  # every schedule gives the same bits
    sym = th.ntk_tiled(model, x1, tile=3, form=form, output=2)
    full_11 = th.ntk(model, x1)
    ref = {"trace": np.einsum("ijoo->ij", full_11), "full": full_11, "output": full_11[:, :, 2, 2]}[form]
    assert rel_err(sym, ref) < 1e-12


def test_tiled_to_npy_stops_and_resumes(net, rng, tmp_path):
    model, _ = net
    x = rng.normal(size=(10, 4))
    path = str(tmp_path / "k.npy")
    first = th.ntk_tiled_to_npy(model, x, path=path, tile=3, max_tiles=2, threads=1)
    assert first["tiles_total"] == 10  # 4 tile rows, upper triangle
    assert first["tiles_computed"] == 2 and not first["complete"]
    assert os.path.exists(path + ".tiles")
    second = th.ntk_tiled_to_npy(model, x, path=path, tile=3)
    assert second["tiles_reused"] == 2 and second["tiles_computed"] == 8
    assert second["complete"] and second["share_done"]
    on_disk = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(on_disk, th.ntk_tiled(model, x, tile=3))
    assert rel_err(on_disk, th.ntk(model, x, form="trace")) < 1e-12
    # Two parts writing one file give the same bytes.
    split = str(tmp_path / "split.npy")
    part0 = th.ntk_tiled_to_npy(model, x, path=split, tile=3, part=0, parts=2)
    part1 = th.ntk_tiled_to_npy(model, x, path=split, tile=3, part=1, parts=2)
    assert part0["share_done"] and part1["share_done"]
    assert part0["tiles_computed"] == 5 and part1["tiles_computed"] == 5
    done = th.ntk_tiled_to_npy(model, x, path=split, tile=3)
    assert done["complete"] and done["tiles_reused"] == 10 and done["tiles_computed"] == 0
    np.testing.assert_array_equal(np.load(split), np.load(path))
    with pytest.raises(ValueError):
        th.ntk_tiled_to_npy(model, x, path=path, tile=3, max_tiles=0)


def test_per_sample_gradients_mse(net, rng):
    model, sd = net
    x = rng.normal(size=(5, 4))
    y = rng.normal(size=(5, 3))
    grads = th.per_sample_gradients(model, x, y, loss="mse")
    jac = flat_jacobian(model, x)  # [n, O, P]
    f = forward(sd, x)
    expected = np.einsum("io,iop->ip", 2.0 * (f - y) / 3.0, jac)
    got = np.concatenate([g.reshape(5, -1) for g in grads.values()], axis=1)
    assert rel_err(got, expected) < 1e-12
    # Their mean is the gradient of the batch loss, computed through module_loss.
    assert rel_err(got.mean(axis=0), th.module_loss(model, x, y, loss="mse").gradient()) < 1e-12
    norms = th.per_sample_gradient_norms(model, x, y, loss="mse")
    assert rel_err(norms, np.linalg.norm(expected, axis=1)) < 1e-12


def test_per_sample_gradients_cross_entropy(net, rng):
    model, sd = net
    x = rng.normal(size=(6, 4))
    labels = rng.integers(0, 3, size=6)
    grads = th.per_sample_gradients(model, x, labels, loss="cross_entropy")
    f = forward(sd, x)
    p = np.exp(f - f.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = np.einsum("io,iop->ip", p - np.eye(3)[labels], flat_jacobian(model, x))
    got = np.concatenate([g.reshape(6, -1) for g in grads.values()], axis=1)
    assert rel_err(got, expected) < 1e-12
    norms = th.per_sample_gradient_norms(model, x, labels, loss="cross_entropy")
    assert rel_err(norms, np.linalg.norm(expected, axis=1)) < 1e-12


def relu_kernels(x1, x2, layers, sigma_w, sigma_b):
    """The arc-cosine NNGP / NTK recursion (Jacot et al.; Arora et al.), written out in NumPy."""
    d = x1.shape[1]
    s12 = sigma_w**2 * x1 @ x2.T / d + sigma_b**2
    s11 = sigma_w**2 * np.sum(x1 * x1, axis=1) / d + sigma_b**2
    s22 = sigma_w**2 * np.sum(x2 * x2, axis=1) / d + sigma_b**2
    ntk = s12.copy()
    for _ in range(layers - 1):
        norm = np.sqrt(np.outer(s11, s22))
        theta_ = np.arccos(np.clip(s12 / norm, -1, 1))
        s12_next = sigma_w**2 * norm * (np.sin(theta_) + (np.pi - theta_) * np.cos(theta_)) / (2 * np.pi) + sigma_b**2
        dot = sigma_w**2 * (np.pi - theta_) / (2 * np.pi)
        ntk = ntk * dot + s12_next
        s12 = s12_next
        s11 = sigma_w**2 * s11 / 2 + sigma_b**2
        s22 = sigma_w**2 * s22 / 2 + sigma_b**2
    return s12, ntk


def test_analytic_relu_kernels_match_the_recursion_and_a_wide_network(rng):
    x1 = rng.normal(size=(4, 5))
    x2 = rng.normal(size=(3, 5))
    k = th.analytic_ntk(x1, x2, layers=3, activation="relu", sigma_w=1.4, sigma_b=0.3)
    nngp, ntk = relu_kernels(x1, x2, 3, 1.4, 0.3)
    assert rel_err(k["nngp"], nngp) < 1e-10
    assert rel_err(k["ntk"], ntk) < 1e-10
    same = th.analytic_ntk(x1, layers=3, activation="relu", sigma_w=1.4, sigma_b=0.3)
    # On the diagonal the reference's arccos of a rounded 1 is off by ~1e-8 (arccos' infinite slope).
    assert rel_err(same["ntk"], relu_kernels(x1, x1, 3, 1.4, 0.3)[1]) < 1e-7
    # A wide network in NTK parameterisation with N(0, 1) weights has about this kernel.
    width = 3000
    widths = [5, width, width, 1]
    sd = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        sd[f"{2 * i}.weight"] = rng.normal(size=(b, a))
        sd[f"{2 * i}.bias"] = rng.normal(size=b)
    wide = th.mlp_from_state_dict(sd, activation="relu", parameterization="ntk", sigma_w=1.4, sigma_b=0.3)
    emp = th.ntk(wide, x1, x2, form="matrix")
    assert np.abs(emp - ntk).max() / np.abs(ntk).max() < 0.1


def test_analytic_erf_kernel_is_symmetric_and_positive(rng):
    x = rng.normal(size=(6, 3))
    k = th.analytic_ntk(x, layers=2, activation="erf", sigma_w=1.0, sigma_b=0.1)
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(k[name], k[name].T, rtol=1e-12)
        assert np.linalg.eigvalsh(k[name]).min() > 0
    with pytest.raises(ValueError):
        th.analytic_ntk(x, layers=2, activation="no_such_activation")


def test_ntk_regression_matches_the_formula(rng):
    n, m, k = 6, 4, 2
    a = rng.normal(size=(n, n))
    k_xx = a @ a.T + n * np.eye(n)
    k_tx = rng.normal(size=(m, n))
    y = rng.normal(size=(n, k))
    f0x, f0t = rng.normal(size=(n, k)), rng.normal(size=(m, k))
    lam, v = np.linalg.eigh(k_xx)
    eta, t = 0.01, 25.0
    decay = v @ np.diag((1 - np.exp(-eta * lam * t)) / lam) @ v.T
    expected = f0t + k_tx @ decay @ (y - f0x)
    got = th.ntk_regression(k_test_train=k_tx, k_train_train=k_xx, y_train=y, f0_train=f0x, f0_test=f0t, eta=eta, t=t)
    assert rel_err(got, expected) < 1e-12
    converged = th.ntk_regression(k_test_train=k_tx, k_train_train=k_xx, y_train=y, f0_train=f0x, f0_test=f0t)
    assert rel_err(converged, f0t + k_tx @ np.linalg.solve(k_xx, y - f0x)) < 1e-12
    steps = v @ np.diag((1 - (1 - eta * lam) ** 25) / lam) @ v.T
    discrete = th.ntk_regression(k_test_train=k_tx, k_train_train=k_xx, y_train=y, f0_train=f0x, f0_test=f0t,
                                 eta=eta, t=t, discrete=True)
    assert rel_err(discrete, f0t + k_tx @ steps @ (y - f0x)) < 1e-12
    with pytest.raises(ValueError, match=r"\[5, 2\]|\[4, 2\]"):
        th.ntk_regression(k_test_train=k_tx, k_train_train=k_xx, y_train=y[:5], f0_train=f0x, f0_test=f0t)


def test_bad_inputs_raise_clear_errors(net, rng):
    model, _ = net
    with pytest.raises(ValueError, match=r"\[5, 3\]"):
        th.ntk(model, rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match=r"\[5, 4\].*\[2, 3\]"):
        th.ntk(model, rng.normal(size=(5, 4)), rng.normal(size=(2, 3)))
    with pytest.raises(ValueError, match=r"\[4\]"):
        th.ntk(model, rng.normal(size=4))
    with pytest.raises(ValueError, match="method"):
        th.ntk(model, rng.normal(size=(2, 4)), method="magic")
    with pytest.raises(ValueError, match="form"):
        th.ntk(model, rng.normal(size=(2, 4)), form="half")
    with pytest.raises(ValueError, match="diagonal"):
        th.ntk(model, rng.normal(size=(2, 4)), rng.normal(size=(2, 4)), form="diagonal")
    with pytest.raises(ValueError, match="loss"):
        th.per_sample_gradients(model, rng.normal(size=(2, 4)), rng.normal(size=(2, 3)), loss="hinge")
    with pytest.raises(TypeError):
        th.ntk(None, rng.normal(size=(2, 4)))
    with pytest.raises(TypeError):
        th.ntk(model, rng.normal(size=(2, 4)).astype(np.int32))
    with pytest.raises(ValueError, match="form"):
        th.ntk_tiled(model, rng.normal(size=(2, 4)), form="diagonal")
    with pytest.raises(IndexError):
        th.ntk_tiled(model, rng.normal(size=(2, 4)), form="output", output=3)


def test_ntk_releases_the_gil_and_keeps_results_per_thread(rng):
    import threading

    theta.set_num_threads(1)
    models = [mlp(rng, [4, 32, 2])[0] for _ in range(2)]
    xs = [rng.normal(size=(20, 4)) for _ in range(2)]
    expected = [th.ntk(m, x) for m, x in zip(models, xs)]
    results = [None, None]

    def run(i):
        results[i] = th.ntk(models[i], xs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
