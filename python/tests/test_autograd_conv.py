"""theta.autograd's conv2d, its adjoints and average pooling against NumPy loops and central differences."""

import numpy as np
import pytest

import theta.autograd as ag
from theta.autograd import Var
from grad_helpers import check_gradients
from conv_helpers import GEOMETRIES, avg_pool_ref, conv_ref


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
