"""theta.theory.analytic_cntk: against a NumPy implementation of the convolutional kernel recursion
and against the fully connected kernels on 1x1 images; argument errors raise ValueError."""

import numpy as np
import pytest

import theta.theory as th
from theory_helpers import rel_err


def _pad4(a, r, padding):
    """A pixel-pair array [H, W, H, W] padded by r on every axis (zeros, or wrapped)."""
    return np.pad(a, r, mode="constant" if padding == "zeros" else "wrap")


def _tap_sum(padded, k, h, w):
    """sum over taps (t1, t2) of padded[p1 + t1, p2 + t2, q1 + t1, q2 + t2] -> [H, W, H, W]."""
    return sum(padded[t1:t1 + h, t2:t2 + w, t1:t1 + h, t2:t2 + w] for t1 in range(k) for t2 in range(k))


def _relu(s, sx, sy):
    """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] per pixel pair; 0 where a self-covariance is 0."""
    r = np.sqrt(sx[:, :, None, None] * sy[None, None, :, :])
    safe = np.where(r > 0, r, 1.0)
    angle = np.arccos(np.clip(s / safe, -1.0, 1.0))
    k = np.where(r > 0, r * (np.sin(angle) + (np.pi - angle) * np.cos(angle)) / (2 * np.pi), 0.0)
    kdot = np.where(r > 0, (np.pi - angle) / (2 * np.pi), 0.0)
    return k, kdot


def _pair_run(x, y, layers, k, padding, sigma_w, sigma_b, self_x=None, self_y=None):
    """Sigma^h and Theta^h [H, W, H, W] for h = 1..layers of one image pair x, y: [C, H, W]."""
    c, h, w = x.shape
    r = k // 2
    mode = "constant" if padding == "zeros" else "wrap"
    xp = np.pad(x, ((0, 0), (r, r), (r, r)), mode=mode)
    yp = np.pad(y, ((0, 0), (r, r), (r, r)), mode=mode)
    gram = np.einsum("cij,ckl->ijkl", xp, yp)
    sigma = sigma_w**2 / (c * k * k) * _tap_sum(gram, k, h, w) + sigma_b**2
    sigmas, thetas = [sigma], [sigma]
    for layer in range(1, layers):
        dx = np.einsum("ijij->ij", (self_x or sigmas)[layer - 1])
        dy = np.einsum("ijij->ij", (self_y or sigmas)[layer - 1])
        kk, kdot = _relu(sigmas[-1], dx, dy)
        nxt = sigma_w**2 / (k * k) * _tap_sum(_pad4(kk, r, padding), k, h, w) + sigma_b**2
        theta = sigma_w**2 / (k * k) * _tap_sum(_pad4(thetas[-1] * kdot, r, padding), k, h, w) + nxt
        sigmas.append(nxt)
        thetas.append(theta)
    return sigmas, thetas


def numpy_cntk(x1, x2, layers, k, padding, readout, sigma_w, sigma_b):
    self1 = [_pair_run(a, a, layers, k, padding, sigma_w, sigma_b)[0] for a in x1]
    self2 = [_pair_run(b, b, layers, k, padding, sigma_w, sigma_b)[0] for b in x2]
    nngp = np.zeros((len(x1), len(x2)))
    ntk = np.zeros_like(nngp)
    for i, a in enumerate(x1):
        for j, b in enumerate(x2):
            sig, the = _pair_run(a, b, layers, k, padding, sigma_w, sigma_b, self1[i], self2[j])
            kk, kdot = _relu(sig[-1], np.einsum("ijij->ij", self1[i][-1]), np.einsum("ijij->ij", self2[j][-1]))
            tk = the[-1] * kdot
            if readout == "flatten":
                kk, tk = np.einsum("ijij->ij", kk), np.einsum("ijij->ij", tk)
            nngp[i, j] = sigma_w**2 * kk.mean() + sigma_b**2
            ntk[i, j] = nngp[i, j] + sigma_w**2 * tk.mean()
    return nngp, ntk


@pytest.mark.parametrize("padding", ["zeros", "circular"])
@pytest.mark.parametrize("readout", ["global_average", "flatten"])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_analytic_cntk_matches_the_numpy_recursion(rng, padding, readout, kernel_size):
    x1 = rng.normal(size=(2, 2, 3, 4))
    x2 = rng.normal(size=(3, 2, 3, 4))
    k = th.analytic_cntk(x1, x2, conv_layers=3, kernel_size=kernel_size, padding=padding, readout=readout,
                         sigma_w=1.3, sigma_b=0.2)
    nngp, ntk = numpy_cntk(x1, x2, 3, kernel_size, padding, readout, 1.3, 0.2)
    assert k["nngp"].shape == (2, 3)
    assert rel_err(k["nngp"], nngp) < 1e-12
    assert rel_err(k["ntk"], ntk) < 1e-12


@pytest.mark.parametrize("readout", ["global_average", "flatten"])
def test_analytic_cntk_on_1x1_images_is_the_fully_connected_kernel(rng, readout):
    x1 = rng.normal(size=(4, 5))
    x2 = rng.normal(size=(3, 5))
    fc = th.analytic_ntk(x1, x2, layers=4, activation="relu", sigma_w=1.1, sigma_b=0.3)
    k = th.analytic_cntk(x1[:, :, None, None], x2[:, :, None, None], conv_layers=3, kernel_size=1,
                         readout=readout, sigma_w=1.1, sigma_b=0.3)
    assert rel_err(k["nngp"], fc["nngp"]) < 1e-13
    assert rel_err(k["ntk"], fc["ntk"]) < 1e-13


def test_analytic_cntk_of_images_with_themselves_is_exactly_symmetric(rng):
    x = rng.normal(size=(4, 1, 5, 5)).astype(np.float32)
    k = th.analytic_cntk(x, conv_layers=2, padding="circular", sigma_b=0.1)
    assert k["ntk"].dtype == np.float64
    np.testing.assert_array_equal(k["ntk"], k["ntk"].T)
    np.testing.assert_array_equal(k["nngp"], k["nngp"].T)
    other = th.analytic_cntk(x, x.copy(), conv_layers=2, padding="circular", sigma_b=0.1)
    assert rel_err(other["ntk"], k["ntk"]) < 1e-14
    assert np.linalg.eigvalsh(k["ntk"]).min() > 0


def test_analytic_cntk_rejects_bad_arguments(rng):
    x = rng.normal(size=(2, 1, 4, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        th.analytic_cntk(x, kernel_size=2)
    with pytest.raises(ValueError, match="conv_layers"):
        th.analytic_cntk(x, conv_layers=0)
    with pytest.raises(ValueError, match="padding"):
        th.analytic_cntk(x, padding="reflect")
    with pytest.raises(ValueError, match="readout"):
        th.analytic_cntk(x, readout="max")
    with pytest.raises(ValueError, match=r"\[2, 16\]"):
        th.analytic_cntk(x.reshape(2, 16))
    with pytest.raises(ValueError, match="same channels"):
        th.analytic_cntk(x, rng.normal(size=(2, 2, 4, 4)))
    with pytest.raises(ValueError, match="x1"):
        th.analytic_cntk(np.full((1, 1, 2, 2), np.nan))
