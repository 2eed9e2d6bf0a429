"""theta.autograd from Python: Var, operators, every op's forward (against NumPy) and gradient
(against central finite differences), grad/backward, the modes and the function transforms."""

import math

import numpy as np
import pytest

import theta.autograd as ag
from theta.autograd import Var
from grad_helpers import EPS, check_gradients, finite_difference



def away_from(a, points, margin=0.1):
    """a with entries within margin of any of points pushed away from them."""
    a = a.copy()
    for p in points:
        close = np.abs(a - p) < margin
        a[close] = p + margin * np.where(a[close] >= p, 1.0, -1.0) * 2
    return a


# ---- elementwise ops -------------------------------------------------------------------------

erf_np = np.vectorize(math.erf)
UNARY = [
    ("neg", ag.neg, np.negative, "any"),
    ("abs", ag.abs, np.abs, "nonzero"),
    ("exp", ag.exp, np.exp, "any"),
    ("log", ag.log, np.log, "positive"),
    ("log1p", ag.log1p, np.log1p, "positive"),
    ("expm1", ag.expm1, np.expm1, "any"),
    ("sqrt", ag.sqrt, np.sqrt, "positive"),
    ("rsqrt", ag.rsqrt, lambda a: 1 / np.sqrt(a), "positive"),
    ("tanh", ag.tanh, np.tanh, "any"),
    ("sigmoid", ag.sigmoid, lambda a: 1 / (1 + np.exp(-a)), "any"),
    ("relu", ag.relu, lambda a: np.maximum(a, 0), "nonzero"),
    ("sin", ag.sin, np.sin, "any"),
    ("cos", ag.cos, np.cos, "any"),
    ("square", ag.square, np.square, "any"),
    ("sign", ag.sign, np.sign, "nonzero"),
    ("erf", ag.erf, erf_np, "any"),
    ("reciprocal", ag.reciprocal, np.reciprocal, "positive"),
    ("pow_scalar", lambda x: ag.pow(x, 2.5), lambda a: a**2.5, "positive"),
    ("clamp", lambda x: ag.clamp(x, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), "clamp"),
    ("add_scalar", lambda x: ag.add_scalar(x, 1.5), lambda a: a + 1.5, "any"),
    ("mul_scalar", lambda x: ag.mul_scalar(x, -2.0), lambda a: a * -2.0, "any"),
    ("div_scalar", lambda x: ag.div_scalar(x, 4.0), lambda a: a / 4.0, "any"),
]


def unary_input(kind, rng, shape=(3, 4)):
    a = rng.standard_normal(shape)
    if kind == "positive":
        return np.abs(a) + 0.5
    if kind == "nonzero":
        return away_from(a, [0.0])
    if kind == "clamp":
        return away_from(a, [-0.5, 0.5])
    return a


@pytest.mark.parametrize("name,op,ref,kind", UNARY, ids=[u[0] for u in UNARY])
def test_unary_op_value_and_gradient(name, op, ref, kind, rng):
    a = unary_input(kind, rng)
    np.testing.assert_allclose(op(Var(a)).value, ref(a), rtol=1e-12, atol=1e-14)
    check_gradients(op, [a], rng)


BINARY = [
    ("add", ag.add, np.add),
    ("sub", ag.sub, np.subtract),
    ("mul", ag.mul, np.multiply),
    ("div", ag.div, np.divide),
    ("pow", ag.pow, np.power),
    ("maximum", ag.maximum, np.maximum),
    ("minimum", ag.minimum, np.minimum),
]


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1))])
def test_binary_op_value_and_gradient_with_broadcasting(name, op, ref, shapes, rng):
    a = np.abs(rng.standard_normal(shapes[0])) + 0.5
    b = np.abs(rng.standard_normal(shapes[1])) + 0.5
    np.testing.assert_allclose(op(Var(a), Var(b)).value, ref(a, b), rtol=1e-12)
    check_gradients(op, [a, b], rng)


def test_where_takes_a_constant_mask_bool_or_numeric(rng):
    a, b = rng.standard_normal((2, 3, 4))
    mask = rng.standard_normal((3, 4)) > 0
    for m in (mask, mask.astype(np.int64), mask.astype(np.float64)):
        np.testing.assert_array_equal(ag.where(m, Var(a), Var(b)).value, np.where(mask, a, b))
    check_gradients(lambda x, y: ag.where(mask, x, y), [a, b], rng)


# ---- reductions ------------------------------------------------------------------------------

REDUCTIONS = [
    ("sum", ag.sum, np.sum),
    ("mean", ag.mean, np.mean),
    ("max", ag.max, np.max),
    ("min", ag.min, np.min),
    ("logsumexp", ag.logsumexp, lambda a, axis=None, keepdims=False: np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))),
    ("var", ag.var, np.var),
]


@pytest.mark.parametrize("name,op,ref", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@pytest.mark.parametrize("axis,keepdim", [(None, False), (1, False), (-1, True), ((0, 2), False), ([0, 2], True)])
def test_reduction_value_and_gradient(name, op, ref, axis, keepdim, rng):
    a = rng.standard_normal((2, 3, 4))
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    np.testing.assert_allclose(op(Var(a), axis=axis, keepdim=keepdim).value,
                               ref(a, axis=np_axis, keepdims=keepdim), rtol=1e-12)
    check_gradients(lambda x: op(x, axis=axis, keepdim=keepdim), [a], rng)


def test_var_correction_and_norms(rng):
    a = rng.standard_normal((3, 5))
    np.testing.assert_allclose(ag.var(Var(a), axis=1, correction=1).value, np.var(a, axis=1, ddof=1), rtol=1e-12)
    check_gradients(lambda x: ag.var(x, axis=0, correction=1), [a], rng)
    for p, ord_ in [(1.0, 1), (2.0, 2), (math.inf, np.inf)]:
        np.testing.assert_allclose(ag.norm(Var(a), p=p, axis=1).value, np.linalg.norm(a, ord=ord_, axis=1), rtol=1e-12)
        check_gradients(lambda x, p=p: ag.norm(x, p=p, axis=1), [away_from(a, [0.0])], rng)
    np.testing.assert_allclose(ag.norm(Var(a)).item(), np.linalg.norm(a), rtol=1e-12)


def test_softmax_log_softmax_vdot_sum_to_expand(rng):
    a = rng.standard_normal((3, 4))
    e = np.exp(a - a.max(axis=0, keepdims=True))
    np.testing.assert_allclose(ag.softmax(Var(a), axis=0).value, e / e.sum(axis=0), rtol=1e-12)
    ref = a - np.log(np.exp(a).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(ag.log_softmax(Var(a)).value, ref, rtol=1e-12)
    check_gradients(lambda x: ag.softmax(x, axis=0), [a], rng)
    check_gradients(ag.log_softmax, [a], rng)
    b = rng.standard_normal((3, 4))
    assert ag.vdot(Var(a), Var(b)).item() == pytest.approx(np.vdot(a, b), rel=1e-12)
    check_gradients(ag.vdot, [a, b], rng)
    np.testing.assert_allclose(ag.sum_to(Var(a), [1, 4]).value, a.sum(axis=0, keepdims=True), rtol=1e-12)
    check_gradients(lambda x: ag.sum_to(x, [4]), [a], rng)
    c = rng.standard_normal((1, 4))
    np.testing.assert_array_equal(ag.expand(Var(c), [3, 4]).value, np.broadcast_to(c, (3, 4)))
    check_gradients(lambda x: ag.expand(x, [2, 3, 4]), [c], rng)


# ---- linear algebra --------------------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2))])
def test_matmul_value_and_gradient(sa, sb, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose(ag.matmul(Var(a), Var(b)).value, a @ b, rtol=1e-12)
    np.testing.assert_allclose((Var(a) @ Var(b)).value, a @ b, rtol=1e-12)
    check_gradients(ag.matmul, [a, b], rng)


def test_linear_equals_matmul_with_the_transpose(rng):
    x, w = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(ag.linear(Var(x), Var(w)).value, x @ w.T, rtol=1e-12)
    check_gradients(ag.linear, [x, w], rng)


def test_matmul_shape_mismatch_is_a_value_error_naming_the_shapes():
    with pytest.raises(ValueError, match=r"\[2, 3\].*\[2, 3\]"):
        ag.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\[5\]"):
        Var(np.ones((2, 3))) @ np.ones(5)


# ---- views and joins -------------------------------------------------------------------------

VIEWS = [
    ("reshape", lambda x: ag.reshape(x, [4, 6]), lambda a: a.reshape(4, 6)),
    ("permute", lambda x: ag.permute(x, [2, 0, 1]), lambda a: a.transpose(2, 0, 1)),
    ("transpose", lambda x: ag.transpose(x, 0, 2), lambda a: a.swapaxes(0, 2)),
    ("slice", lambda x: ag.slice(x, 2, 0, 4, 2), lambda a: a[:, :, 0:4:2]),
    ("select", lambda x: ag.select(x, 1, 2), lambda a: a[:, 2]),
    ("unsqueeze", lambda x: ag.unsqueeze(x, 1), lambda a: a[:, None]),
    ("flatten", ag.flatten, np.ravel),
    ("index_select", lambda x: ag.index_select(x, 2, np.array([3, 0, 3])), lambda a: a[:, :, [3, 0, 3]]),
    ("gather", lambda x: ag.gather(x, 1, np.array([[[0, 2, 1, 0]], [[2, 2, 0, 1]]])),
     lambda a: np.take_along_axis(a, np.array([[[0, 2, 1, 0]], [[2, 2, 0, 1]]]), axis=1)),
    ("method_T", lambda x: x.T, lambda a: a.T),
]


@pytest.mark.parametrize("name,op,ref", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_value_and_gradient(name, op, ref, rng):
    a = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(op(Var(a)).value, ref(a))
    check_gradients(op, [a], rng)


def test_t_squeeze_slice_backward(rng):
    a = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(ag.t(Var(a)).value, a.T)
    check_gradients(ag.t, [a], rng)
    b = rng.standard_normal((3, 1, 4))
    np.testing.assert_array_equal(ag.squeeze(Var(b), 1).value, b[:, 0])
    check_gradients(lambda x: ag.squeeze(x, 1), [b], rng)
    c = rng.standard_normal((3, 2))
    want = np.zeros((3, 5))
    want[:, 1:5:2] = c
    np.testing.assert_array_equal(ag.slice_backward(Var(c), [3, 5], 1, 1, 5, 2).value, want)
    check_gradients(lambda x: ag.slice_backward(x, [3, 5], 1, 1, 5, 2), [c], rng)


def test_concat_stack_scatter_add(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    np.testing.assert_array_equal(ag.concat([Var(a), Var(b)]).value, np.concatenate([a, b]))
    check_gradients(lambda x, y: ag.concat([x, y], axis=0), [a, b], rng)
    c = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(ag.stack([Var(a), Var(c)], axis=1).value, np.stack([a, c], axis=1))
    check_gradients(lambda x, y: ag.stack([x, y], axis=1), [a, c], rng)
    x, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    index = np.array([[0, 3], [1, 1], [2, 0]])
    want = x.copy()
    for i in range(3):
        for j in range(2):
            want[i, index[i, j]] += src[i, j]
    np.testing.assert_allclose(ag.scatter_add(Var(x), 1, index, Var(src)).value, want, rtol=1e-15)
    check_gradients(lambda u, v: ag.scatter_add(u, 1, index, v), [x, src], rng)


def test_var_methods_match_the_functions(rng):
    a = rng.standard_normal((2, 3, 4))
    x = Var(a)
    same = [
        (x.sum(), ag.sum(x)), (x.sum(axis=1, keepdim=True), ag.sum(x, axis=1, keepdim=True)),
        (x.mean(axis=(0, 2)), ag.mean(x, axis=(0, 2))), (x.max(axis=0), ag.max(x, axis=0)),
        (x.min(), ag.min(x)), (x.reshape(4, 6), ag.reshape(x, [4, 6])), (x.reshape((6, 4)), ag.reshape(x, [6, 4])),
        (x.permute(1, 2, 0), ag.permute(x, [1, 2, 0])), (x.permute((2, 1, 0)), x.T),
        (x.transpose(0, 1), ag.transpose(x, 0, 1)), (x.flatten(), ag.flatten(x)),
        (x.unsqueeze(0).squeeze(0), x), (x.exp(), ag.exp(x)), (x.abs().log(), ag.log(ag.abs(x))),
        (x.tanh(), ag.tanh(x)), (x.sigmoid(), ag.sigmoid(x)), (x.relu(), ag.relu(x)),
        (x.abs().sqrt(), ag.sqrt(ag.abs(x))), (x.pow(3.0), ag.pow(x, 3.0)), (x.softmax(1), ag.softmax(x, 1)),
        (x.log_softmax(), ag.log_softmax(x)), (x.matmul(np.ones((4, 2))), ag.matmul(x, np.ones((4, 2)))),
    ]
    for got, want in same:
        np.testing.assert_array_equal(got.value, want.value)


# ---- Var and operators -----------------------------------------------------------------------

def test_var_properties_and_memory_sharing():
    a = np.arange(6.0).reshape(2, 3)
    x = Var(a, requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == np.float64 and x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    assert np.shares_memory(x.value, a) and np.shares_memory(x.numpy(), a)
    assert "requires_grad=true" in repr(x)
    y = x * 2.0
    assert not y.is_leaf and y.requires_grad and y.grad_fn == "mul_scalar" and "grad_fn=mul_scalar" in repr(y)
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and np.shares_memory(d.value, y.value)
    assert Var(y).is_leaf and np.shares_memory(Var(y).value, y.value)
    assert Var(2.5).item() == 2.5 and Var(3).dtype == np.float64 and Var(3).shape == ()
    assert float(Var(np.array([1.25]))) == 1.25
    assert np.shares_memory(np.asarray(x), a) and not np.shares_memory(np.array(x), a)
    assert np.asarray(x, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(y), 2 * a)
    assert Var([1.0, 2.0]).shape == (2,)
    assert Var(np.ones(2, np.float32)).dtype == np.float32
    with pytest.raises(TypeError):
        len(Var(1.0))
    with pytest.raises(RuntimeError, match="leaves"):
        y.requires_grad = False
    x.requires_grad = False
    assert not x.requires_grad and (x * 2.0).grad_fn is None


def test_only_floating_vars_require_gradients():
    with pytest.raises(TypeError, match="int64"):
        Var(np.arange(3), requires_grad=True)
    x = Var(np.arange(3))
    with pytest.raises(TypeError):
        x.requires_grad = True
    with pytest.raises(TypeError):
        Var(True)
    with pytest.raises(TypeError):
        Var(np.zeros(2, dtype=np.int32))
    with pytest.raises(TypeError):
        ag.exp("abc")


def test_backward_accumulates_zero_grad_and_grad_setter(rng):
    a = rng.standard_normal(4)
    x = Var(a, requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * a, rtol=1e-15)
    ag.backward((3.0 * x).sum())
    np.testing.assert_allclose(x.grad, 2 * a + 3, rtol=1e-15)
    x.zero_grad()
    assert x.grad is None
    x.grad = np.ones(4)
    np.testing.assert_array_equal(x.grad, np.ones(4))
    with pytest.raises(ValueError, match=r"\[3\]"):
        x.grad = np.ones(3)
    x.grad = None
    assert x.grad is None
    w = rng.standard_normal(4)
    y = ag.exp(x)
    y.backward(w, retain_graph=True)
    np.testing.assert_allclose(x.grad, w * np.exp(a), rtol=1e-15)
    y.backward(grad_output=w)
    np.testing.assert_allclose(x.grad, 2 * w * np.exp(a), rtol=1e-15)
    with pytest.raises(RuntimeError):
        y.backward(w)  # buffers released by the previous pass
    with pytest.raises(ValueError):
        ag.exp(x).backward()  # not a scalar, no grad_output


def test_operators_with_numbers_arrays_and_vars(rng):
    a, b = np.abs(rng.standard_normal((2, 3))) + 0.5, np.abs(rng.standard_normal(3)) + 0.5
    x, y = Var(a), Var(b)
    cases = [
        (x + y, a + b), (x + 2.0, a + 2), (2 + x, 2 + a), (x + b, a + b), (b + x, b + a),
        (x - y, a - b), (x - 1, a - 1), (1.5 - x, 1.5 - a), (b - x, b - a),
        (x * y, a * b), (x * 3, a * 3), (3.0 * x, 3 * a), (b * x, b * a),
        (x / y, a / b), (x / 4, a / 4), (4 / x, 4 / a), (b / x, b / a),
        (-x, -a), (+x, a), (x ** 2, a ** 2), (x ** y, a ** b), (2.0 ** x, 2.0 ** a), (b ** x, b ** a),
        (x ** 0.5, a ** 0.5), (x @ b, a @ b), (np.ones((4, 2)) @ x, np.ones((4, 2)) @ a),
        (np.float64(2.0) * x, 2 * a), (x * np.float64(2.0), 2 * a),
    ]
    for got, want in cases:
        assert isinstance(got, Var)
        np.testing.assert_allclose(got.value, want, rtol=1e-14)
    with pytest.raises(TypeError):
        x + "a"
    check_gradients(lambda u, v: (u * v - u / v + 2.0 ** u) ** 2 @ v - 3 * u.sum() + (v ** u.mean()).sum(), [a, b], rng)


# ---- grad, modes -----------------------------------------------------------------------------

def test_grad_single_and_lists_and_allow_unused(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    x, y, z = Var(a, True), Var(b, True), Var(a.copy(), True)
    out = (x * y).sum()
    g = ag.grad(out, x, retain_graph=True)
    assert isinstance(g, Var)
    np.testing.assert_allclose(g.value, b, rtol=1e-15)
    gx, gy = ag.grad([out], [x, y], retain_graph=True)
    np.testing.assert_allclose(gy.value, a, rtol=1e-15)
    with pytest.raises(Exception):
        ag.grad(out, [x, z], retain_graph=True)
    gx, gz = ag.grad(out, (x, z), allow_unused=True, retain_graph=True)
    assert gz is None
    w = rng.standard_normal(3)
    (gx,) = ag.grad([x * y], [x], grad_outputs=[w])
    np.testing.assert_allclose(gx.value, w * b, rtol=1e-15)
    assert x.grad is None  # grad() is functional


def test_create_graph_gives_differentiable_gradients(rng):
    a = rng.standard_normal(4)
    x = Var(a, requires_grad=True)
    (g,) = ag.grad([(x ** 3).sum() * ag.sin(x).sum()], [x], create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = ag.grad([g.sum()], [x], retain_graph=True)

    def grad_sum(values):
        v = Var(values[0], True)
        return float(ag.grad((v ** 3).sum() * ag.sin(v).sum(), v).value.sum())

    np.testing.assert_allclose(h.value, finite_difference(grad_sum, [a])[0], rtol=1e-6, atol=1e-8)
    gg = ag.grad(g.sum(), x, create_graph=False)
    assert gg.grad_fn is None


def test_no_grad_records_nothing_and_enable_grad_restores(rng):
    x = Var(rng.standard_normal(3), True)
    before = ag.live_node_count()
    with ag.no_grad():
        assert not ag.grad_mode_enabled()
        y = ag.exp(x) * x + x @ x
        assert ag.live_node_count() == before
        with ag.enable_grad():
            assert ag.grad_mode_enabled()
            z = x * 2.0
        assert not ag.grad_mode_enabled()
    assert ag.grad_mode_enabled()
    assert y.grad_fn is None and not y.requires_grad and z.grad_fn == "mul_scalar"
    with pytest.raises(Exception):
        y.backward(np.ones(3))

    @ag.no_grad()
    def f(v):
        return ag.tanh(v)

    assert f(x).grad_fn is None and ag.grad_mode_enabled()
    with ag.set_grad_enabled(False):
        assert ag.tanh(x).grad_fn is None
    ag.set_grad_mode(False)
    try:
        assert ag.tanh(x).grad_fn is None
    finally:
        ag.set_grad_mode(True)
    try:
        with ag.no_grad():
            raise KeyError("x")
    except KeyError:
        pass
    assert ag.grad_mode_enabled()


def test_anomaly_mode_names_the_op():
    assert not ag.anomaly_mode_enabled()
    assert np.isnan(ag.log(Var(-1.0)).item())
    with ag.detect_anomaly():
        assert ag.anomaly_mode_enabled()
        with pytest.raises(RuntimeError, match="log"):
            ag.log(Var(-1.0))
    assert not ag.anomaly_mode_enabled()
    ag.set_anomaly_mode(True)
    try:
        with pytest.raises(RuntimeError):
            ag.sqrt(Var(-1.0))
    finally:
        ag.set_anomaly_mode(False)


def test_primitive_names_lists_the_ops():
    names = ag.primitive_names()
    assert {"exp", "matmul", "sum"} <= set(names)


# ---- transforms ------------------------------------------------------------------------------

def loss_two(w, b):
    return ag.sum(ag.tanh(w @ b) ** 2) + ag.logsumexp(w).mean() * ag.sum(b ** 3)


def numpy_grad(f, arrays):
    """The gradient of f by grad(), for finite differences of it."""
    xs = [Var(a, True) for a in arrays]
    return [g.value.copy() for g in ag.grad(f(*xs), xs)]


def test_hvp_against_finite_differences_hessian_and_operator(rng):
    w, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    vw, vb = rng.standard_normal((3, 4)), rng.standard_normal(4)
    hv = ag.hvp(loss_two, [w, b], [vw, vb])
    assert isinstance(hv, list) and hv[0].shape == (3, 4) and hv[1].shape == (4,)
    # finite differences of the gradient along v
    gp = numpy_grad(loss_two, [w + EPS * vw, b + EPS * vb])
    gm = numpy_grad(loss_two, [w - EPS * vw, b - EPS * vb])
    for h, p, m in zip(hv, gp, gm):
        np.testing.assert_allclose(h, (p - m) / (2 * EPS), rtol=1e-6, atol=1e-7)
    H = ag.hessian(loss_two, [w, b])
    assert H.shape == (16, 16)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-13)
    flat = np.concatenate([h.ravel() for h in hv])
    np.testing.assert_allclose(H @ np.concatenate([vw.ravel(), vb.ravel()]), flat, rtol=1e-10, atol=1e-12)
    op = ag.HessianVectorOperator(loss_two, [w, b])
    assert op.size == 16
    assert op.loss == loss_two(Var(w), Var(b)).item()
    for got, want in zip(op.apply([vw, vb]), ag.hvp(loss_two, [w, b], [vw, vb], method="reverse_over_reverse")):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(op.apply([vw, vb]), hv):  # forward over reverse, the default
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    for got, want in zip(op.gradient(), numpy_grad(loss_two, [w, b])):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(ag.vhp(loss_two, [w, b], [vw, vb]), hv):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_single_array_in_gives_single_array_out(rng):
    a, v = rng.standard_normal(5), rng.standard_normal(5)

    def f(x):
        return ag.sum(ag.sin(x) * x ** 2)

    hv = ag.hvp(f, a, v)
    assert isinstance(hv, np.ndarray) and hv.shape == (5,)
    np.testing.assert_array_equal(ag.hvp(f, [a], [v])[0], hv)
    np.testing.assert_array_equal(ag.hvp(f, Var(a), v), hv)
    op = ag.HessianVectorOperator(f, a)
    assert isinstance(op.apply(v), np.ndarray)
    np.testing.assert_array_equal(op.apply(v), ag.hvp(f, a, v, method="reverse_over_reverse"))
    np.testing.assert_allclose(op.apply(v), hv, rtol=1e-12, atol=1e-13)
    assert isinstance(op.gradient(), np.ndarray)
    np.testing.assert_allclose(ag.hessian(f, a) @ v, hv, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ag.vhp(f, a, v), hv, rtol=1e-12, atol=1e-13)
    out, g = ag.vjp(f, a, np.array(1.0))
    assert out.shape == () and isinstance(g, np.ndarray)
    np.testing.assert_array_equal(g, op.gradient())


def f_multi(x, y):
    return [ag.tanh(x @ y), ag.exp(y).sum() * x]


def test_vjp_jvp_are_adjoint_and_match_the_jacobian(rng):
    x, y = rng.standard_normal((2, 3)), rng.standard_normal(3)
    outs = f_multi(Var(x), Var(y))
    us = [rng.standard_normal(o.shape) for o in outs]
    tx, ty = rng.standard_normal(x.shape), rng.standard_normal(y.shape)
    out_v, (gx, gy) = ag.vjp(f_multi, [x, y], us)
    out_j, (j0, j1) = ag.jvp(f_multi, [x, y], [tx, ty])
    for o, want in zip(out_v, outs):
        np.testing.assert_array_equal(o, want.value)
    for o, want in zip(out_j, outs):
        np.testing.assert_array_equal(o, want.value)
    lhs = np.vdot(us[0], j0) + np.vdot(us[1], j1)
    rhs = np.vdot(gx, tx) + np.vdot(gy, ty)
    assert lhs == pytest.approx(rhs, rel=1e-12)
    jac = ag.jacobian(f_multi, [x, y])
    assert [[b.shape for b in row] for row in jac] == [[(2, 2, 3), (2, 3)], [(2, 3, 2, 3), (2, 3, 3)]]
    for i, u in enumerate(us):
        want_x = np.tensordot(u, jac[i][0], axes=u.ndim)
        want_y = np.tensordot(u, jac[i][1], axes=u.ndim)
        if i == 0:
            sx, sy = want_x, want_y
        else:
            sx, sy = sx + want_x, sy + want_y
    np.testing.assert_allclose(gx, sx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gy, sy, rtol=1e-12, atol=1e-13)
    jt0 = np.tensordot(jac[0][0], tx, axes=2) + np.tensordot(jac[0][1], ty, axes=1)
    np.testing.assert_allclose(j0, jt0, rtol=1e-12, atol=1e-13)


def test_jacobian_against_finite_differences_and_chunking(rng):
    x = rng.standard_normal((2, 3))

    def f(v):
        return ag.softmax(v, axis=1) * ag.sum(v ** 2)

    jac = ag.jacobian(f, x)
    assert isinstance(jac, np.ndarray) and jac.shape == (2, 3, 2, 3)
    fd = np.zeros((2, 3, 2, 3))
    for idx in np.ndindex(2, 3):
        p, m = x.copy(), x.copy()
        p[idx] += EPS
        m[idx] -= EPS
        fd[(...,) + idx] = (f(Var(p)).value - f(Var(m)).value) / (2 * EPS)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-8)
    for chunk in (1, 4):
        np.testing.assert_allclose(ag.jacobian(f, x, chunk_size=chunk), jac, rtol=1e-14, atol=1e-15)
    single_out_many_in = ag.jacobian(lambda u, v: u * v, [x, x + 1])
    assert isinstance(single_out_many_in, list) and len(single_out_many_in) == 2
    many_out_single_in = ag.jacobian(lambda u: (u * 2.0, ag.sum(u)), x)
    assert isinstance(many_out_single_in, list) and many_out_single_in[1].shape == (2, 3)
    np.testing.assert_array_equal(many_out_single_in[1], np.ones((2, 3)))


def test_hessian_against_finite_differences_of_the_gradient(rng):
    a = rng.standard_normal(4)

    def f(x):
        return ag.logsumexp(x) * ag.norm(x)

    H = ag.hessian(f, a)

    def gi(values):
        return numpy_grad(f, values)[0]

    fd = np.stack([(gi([a + EPS * e]) - gi([a - EPS * e])) / (2 * EPS) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8)


class Boom(Exception):
    pass


def test_exceptions_inside_f_propagate_unchanged():
    err = Boom("inside f")

    def f(*xs):
        raise err

    a = np.ones(3)
    calls = [
        lambda: ag.vjp(f, a, a), lambda: ag.jvp(f, a, a), lambda: ag.hvp(f, a, a), lambda: ag.vhp(f, a, a),
        lambda: ag.jacobian(f, a), lambda: ag.hessian(f, a), lambda: ag.HessianVectorOperator(f, a),
    ]
    for call in calls:
        with pytest.raises(Boom) as info:
            call()
        assert info.value is err
    assert ag.grad_mode_enabled()


def test_bad_results_of_f_are_type_errors():
    a = np.ones(3)
    with pytest.raises(TypeError, match="f's result"):
        ag.vjp(lambda x: "no", a, a)
    with pytest.raises(TypeError, match="one scalar Var"):
        ag.hvp(lambda x: [ag.sum(x)], a, a)
    with pytest.raises(TypeError):
        ag.hvp(lambda x: None, a, a)
    with pytest.raises(TypeError):
        ag.hvp(lambda x: x.sum(), a, "not an array")


# ---- indexing, bad input, threads --------------------------------------------------------------

@pytest.mark.parametrize("key", [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (0, Ellipsis, slice(1, None, 2)),
                                 slice(5, 1), (slice(None, None, 2),), (1, 2, 3)])
def test_indexing_matches_numpy_and_differentiates(key, rng):
    a = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(Var(a)[key].value, a[key])
    check_gradients(lambda x: x[key], [a], rng)


@pytest.mark.parametrize("key,error", [(5, IndexError), ((0, 0, 0, 0), IndexError), (slice(None, None, -1), IndexError),
                                       ("a", TypeError), ([0, 1], TypeError), ((Ellipsis, Ellipsis), IndexError)])
def test_bad_indices_raise(key, error):
    with pytest.raises(error):
        Var(np.ones((2, 3, 4)))[key]


def sq(x):
    return (x ** 2).sum()


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: ag.jacobian(lambda x: x * 2.0, np.ones(3), chunk_size=-1), ValueError, "chunk_size"),
    (lambda: ag.hvp(sq, np.ones(3), np.ones(4)), ValueError, r"\[4\].*\[3\]"),
    (lambda: ag.hvp(sq, np.ones(3), [np.ones(3), np.ones(3)]), ValueError, "2 vectors"),
    (lambda: ag.HessianVectorOperator(sq, np.ones(3)).apply(np.ones(2)), ValueError, r"\[2\]"),
    (lambda: ag.vjp(sq, np.ones(3), np.ones(3)), ValueError, "cotangent"),
    (lambda: ag.jvp(sq, np.ones(3), np.ones(2)), ValueError, "tangent"),
    (lambda: ag.hvp(lambda x: x * 2.0, np.ones(3), np.ones(3)), ValueError, "one element"),
    (lambda: ag.hessian(lambda x: x * 2.0, np.ones(3)), ValueError, "one element"),
    (lambda: ag.jacobian(lambda x: x * 2.0, np.arange(3)), TypeError, "int64"),
    (lambda: ag.grad([], []), ValueError, "no outputs"),
    (lambda: ag.grad(Var(1.0, True), None), TypeError, "inputs"),
    (lambda: Var(np.ones(6)).reshape(4, 2), ValueError, r"\[4, 2\]"),
    (lambda: ag.select(Var(np.ones(3)), 0, 5), IndexError, "5"),
    (lambda: Var(np.ones(2, np.float32)) + Var(np.ones(2)), TypeError, "float32"),
    (lambda: ag.stack([Var(np.ones(2)), Var(np.ones(3))]), ValueError, r"\[2\].*\[3\]"),
    (lambda: ag.sum(Var(np.ones(3)), axis=5), IndexError, "axis 5"),
    (lambda: ag.sum(Var(np.ones(3)), axis="x"), TypeError, "axis"),
    (lambda: ag.norm(Var(np.ones(3)), p=3), ValueError, "p = 1, 2, inf"),
    (lambda: setattr(Var(np.ones(3), True), "grad", np.ones(3, dtype=np.int64)), TypeError, "int64"),
    (lambda: (Var(np.ones(3), True) * 2.0).backward(np.ones(2)), ValueError, r"\[2\].*\[3\]"),
    (lambda: Var(1.0) @ Var(np.ones(2)), ValueError, "dimension"),
    (lambda: Var(np.ones(2)).reshape("a"), TypeError, "reshape"),
])
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_backward_from_several_threads_on_one_shared_graph(rng):
    """backward and grad release the GIL; concurrent passes on a shared graph stay correct."""
    import threading

    a = rng.standard_normal((40, 40))
    w = Var(a, requires_grad=True)
    hidden = ag.tanh(w @ w)  # shared by every thread's graph
    want = ag.grad((hidden * hidden).sum(), w, retain_graph=True).value.copy()
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(ag.grad((hidden * hidden).sum(), w, retain_graph=True).value)
                (hidden.sum() * 0.0).backward(retain_graph=True)
                _ = w.grad
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, want)
    np.testing.assert_array_equal(w.grad, np.zeros_like(a))


def test_one_computation_two_ways_is_bitwise_equal(rng):
    a, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def f(x):
        return ag.log_softmax(x, axis=1) * ag.sigmoid(x)

    def loss(x):
        return ag.sum(f(x) ** 2)

    # grad() and backward() run the same pass
    x = Var(a, requires_grad=True)
    g = ag.grad(loss(x), x).value
    loss(x).backward()
    np.testing.assert_array_equal(x.grad, g)
    # vjp with a unit cotangent of a scalar is the gradient
    np.testing.assert_array_equal(ag.vjp(loss, a, np.array(1.0))[1], g)
    # one jvp equals the Jacobian contracted with the tangent; chunking changes nothing
    out, jv = ag.jvp(f, a, v)
    assert isinstance(out, np.ndarray) and isinstance(jv, np.ndarray)
    jac = ag.jacobian(f, a)
    np.testing.assert_allclose(jv, np.tensordot(jac, v, axes=2), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(ag.jacobian(f, a, chunk_size=5), jac)
    # the gradient graph of the operator, the hvp transform and vhp's transposed form
    op = ag.HessianVectorOperator(loss, a)
    np.testing.assert_array_equal(op.apply(v), ag.hvp(loss, a, v, method="reverse_over_reverse"))
    np.testing.assert_array_equal(op.gradient(), g)
    np.testing.assert_allclose(ag.vhp(loss, a, v), op.apply(v), rtol=1e-12, atol=1e-13)


def test_jvp_and_hvp_methods_agree_and_unknown_methods_are_refused(rng):
    x, y = rng.standard_normal((2, 3)), rng.standard_normal(3)
    tx, ty = rng.standard_normal(x.shape), rng.standard_normal(y.shape)
    out_f, tan_f = ag.jvp(f_multi, [x, y], [tx, ty])
    out_r, tan_r = ag.jvp(f_multi, [x, y], [tx, ty], method="double_vjp")
    for a, b in zip(out_f + tan_f, out_r + tan_r):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    w, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    vw, vb = rng.standard_normal((3, 4)), rng.standard_normal(4)
    fr = ag.hvp(loss_two, [w, b], [vw, vb], method="forward_over_reverse")
    rr = ag.hvp(loss_two, [w, b], [vw, vb], method="reverse_over_reverse")
    for a, b2 in zip(fr, rr):
        np.testing.assert_allclose(a, b2, rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="double_vjp"):
        ag.jvp(f_multi, [x, y], [tx, ty], method="reverse")
    with pytest.raises(ValueError, match="reverse_over_reverse"):
        ag.hvp(loss_two, [w, b], [vw, vb], method="fwd")
