"""theta.theory loss landscapes: flat parameter vectors, filter-normalised directions, losses on
slices through parameter space and trajectory PCA, against NumPy forward passes, loops and SVDs."""

import numpy as np
import pytest

import theta
import theta.theory as th
from theory_helpers import forward, mlp, parameter_vector, rel_err


def _numpy_filter_normalize(model, direction, origin, zero_bias_and_norm=True, frozen=()):
    """Li et al.'s filter normalisation by a loop over the rows (first-axis slices) of each weight."""
    out = np.array(direction, dtype=np.float64)
    offset = 0
    for name, p in model.named_parameters().items():
        d = out[offset:offset + p.size].reshape(p.shape[0] if p.ndim >= 2 else 1, -1)
        o = np.asarray(origin)[offset:offset + p.size].reshape(d.shape)
        if any(name.startswith(prefix) for prefix in frozen) or (p.ndim <= 1 and zero_bias_and_norm):
            d[:] = 0.0
        else:
            for j in range(d.shape[0]):
                norm = np.linalg.norm(d[j])
                d[j] *= np.linalg.norm(o[j]) / norm if norm > 0 else 0.0
        offset += p.size
    return out


def _as_state_dict(sd, flat):
    """The state_dict `sd` (torch layout, in registration order) holding the flat vector's values."""
    out, offset = {}, 0
    for name, value in sd.items():
        out[name] = flat[offset:offset + value.size].reshape(value.shape)
        offset += value.size
    assert offset == flat.size
    return out


def _mse(sd, x, y):
    return np.mean((forward(sd, x) - y) ** 2)


def _cross_entropy(sd, x, labels):
    logits = forward(sd, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(log_p[np.arange(len(labels)), labels])


@pytest.fixture
def problem(rng):
    """A tanh MLP 3-6-2 with its state_dict, data for the squared loss and a random direction."""
    model, sd = mlp(rng, [3, 6, 2])
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    return model, sd, x, y


def test_parameter_vector_is_a_copy_in_registration_order(problem):
    model, sd, _, _ = problem
    assert list(model.named_parameters()) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    flat = th.parameter_vector(model)
    np.testing.assert_array_equal(flat, np.concatenate([v.ravel() for v in sd.values()]))
    assert flat.dtype == np.float64 and flat.shape == (model.parameter_count,)
    flat[0] += 1.0
    np.testing.assert_array_equal(parameter_vector(model), np.concatenate([v.ravel() for v in sd.values()]))


def test_filter_normalize_matches_a_numpy_loop_over_filters(problem, rng):
    model, _, _, _ = problem
    p = model.parameter_count
    d, origin = rng.normal(size=p), rng.normal(size=p)
    d[:3] = 0.0  # the first filter (row 0 of layers.0.weight) is zero and stays zero
    got = th.filter_normalize(model, d, origin)
    np.testing.assert_allclose(got, _numpy_filter_normalize(model, d, origin), rtol=1e-14, atol=0)
    assert not got[:3].any() and not got[18:24].any()  # zero filter, zeroed bias
    # Row norms equal the origin's.
    w = got[3:18].reshape(5, 3)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), np.linalg.norm(origin[3:18].reshape(5, 3), axis=1),
                               rtol=1e-14)
    # Biases normalised as one filter; a frozen layer left at zero; the default origin is the model.
    np.testing.assert_allclose(th.filter_normalize(model, d, origin, zero_bias_and_norm=False),
                               _numpy_filter_normalize(model, d, origin, zero_bias_and_norm=False), rtol=1e-14)
    np.testing.assert_allclose(th.filter_normalize(model, d, origin, frozen=["layers.0."]),
                               _numpy_filter_normalize(model, d, origin, frozen=["layers.0."]), rtol=1e-14)
    np.testing.assert_array_equal(th.filter_normalize(model, d), th.filter_normalize(model, d, parameter_vector(model)))


def test_filter_normalize_takes_conv_output_channels_as_filters(rng):
    conv = theta.nn.Conv2d(2, 3, 3, seed=4)  # weight [3, 2, 3, 3], bias [3]
    p = conv.parameter_count
    d = rng.normal(size=p)
    origin = th.parameter_vector(conv)
    got = th.filter_normalize(conv, d, origin)
    np.testing.assert_allclose(got, _numpy_filter_normalize(conv, d, origin), rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(got[:54].reshape(3, 18), axis=1),
                               np.linalg.norm(origin[:54].reshape(3, 18), axis=1), rtol=1e-14)


def test_random_direction_is_a_seeded_normal_draw_then_filter_normalised(problem, rng):
    model, _, _, _ = problem
    p = model.parameter_count
    raw = th.random_direction(model, seed=7, normalization="none")
    # The draw is Rng(7)'s N(0, 1) stream, as nn.init.lecun_normal([P]) draws it with std 1/sqrt(P).
    np.testing.assert_allclose(raw, theta.nn.init.lecun_normal([p], seed=7) * np.sqrt(p), rtol=1e-15)
    np.testing.assert_array_equal(th.random_direction(model, seed=7, normalization="none"), raw)
    assert not np.array_equal(th.random_direction(model, seed=8, normalization="none"), raw)
    origin = parameter_vector(model)
    np.testing.assert_allclose(th.random_direction(model, seed=7),
                               _numpy_filter_normalize(model, raw, origin), rtol=1e-14)
    elsewhere = rng.normal(size=p)
    np.testing.assert_allclose(
        th.random_direction(model, seed=7, origin=elsewhere, zero_bias_and_norm=False, frozen=["layers.2."]),
        _numpy_filter_normalize(model, raw, elsewhere, zero_bias_and_norm=False, frozen=["layers.2."]), rtol=1e-14)


def test_slices_match_numpy_forward_passes_and_leave_the_model_alone(problem, rng):
    model, sd, x, y = problem
    origin = th.parameter_vector(model)
    d1 = th.random_direction(model, seed=1)
    d2 = th.random_direction(model, seed=2)
    alphas, betas = np.linspace(-1.0, 1.0, 5), np.array([-0.5, 0.0, 0.25])

    def loss_at(theta_vec):
        return _mse(_as_state_dict(sd, theta_vec), x, y)

    np.testing.assert_allclose(th.loss_slice(model, x, y, origin, d1, alphas),
                               [loss_at(origin + a * d1) for a in alphas], rtol=1e-12)
    surface = th.loss_surface(model, x, y, origin, d1, d2, alphas, betas)
    assert surface.shape == (5, 3)
    np.testing.assert_allclose(surface, [[loss_at(origin + a * d1 + b * d2) for b in betas] for a in alphas],
                               rtol=1e-12)
    assert surface[2, 1] == pytest.approx(_mse(sd, x, y), rel=1e-14)  # (0, 0) is the model itself
    coordinates = np.stack(np.meshgrid(alphas, betas, indexing="ij"), axis=-1).reshape(-1, 2)
    np.testing.assert_array_equal(th.evaluate_losses(model, x, y, origin, [d1, d2], coordinates), surface.ravel())
    end = origin + 0.3 * rng.normal(size=origin.size)
    ts = np.array([0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(th.loss_interpolation(model, x, y, origin, end, ts),
                               [loss_at(origin + t * (end - origin)) for t in ts], rtol=1e-12)
    np.testing.assert_allclose(th.loss_interpolation(model, x, y, from_=origin, to=end, alphas=ts)[[0, 2]],
                               [loss_at(origin), loss_at(end)], rtol=1e-12)
    np.testing.assert_array_equal(parameter_vector(model), origin)  # never touched


def test_cross_entropy_slice_and_thread_count_invariance(rng):
    model, sd = mlp(rng, [4, 5, 3])
    x, labels = rng.normal(size=(10, 4)), rng.integers(0, 3, size=10)
    origin = th.parameter_vector(model)
    d = th.random_direction(model, seed=3)
    alphas = np.linspace(-2.0, 2.0, 7)
    one = theta.get_num_threads()
    try:
        theta.set_num_threads(1)
        serial = th.loss_slice(model, x, labels, origin, d, alphas, loss="cross_entropy")
        theta.set_num_threads(2)
        parallel = th.loss_slice(model, x, labels, origin, d, alphas, loss="cross_entropy")
    finally:
        theta.set_num_threads(one)
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_allclose(serial, [_cross_entropy(_as_state_dict(sd, origin + a * d), x, labels) for a in alphas],
                               rtol=1e-12)


def _numpy_pca(trajectory, k):
    m = trajectory - trajectory[-1]
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    v = vt[:k]
    coordinates = m @ v.T
    signs = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), np.arange(k)])
    return v * signs[:, None], s, coordinates * signs


def test_trajectory_pca_matches_numpy_svd(rng):
    steps = np.cumsum(rng.normal(size=(7, 12)) * np.linspace(3.0, 0.1, 12), axis=0)  # an anisotropic walk
    directions, s, coordinates = _numpy_pca(steps, 3)
    for method in ("svd", "gram"):
        pca = th.trajectory_pca(steps, 3, method=method)
        assert isinstance(pca, th.TrajectoryPca) and "k=3" in repr(pca)
        tol = 1e-12 if method == "svd" else 1e-8
        np.testing.assert_array_equal(pca.origin, steps[-1])
        np.testing.assert_allclose(pca.directions, directions, rtol=0, atol=tol)
        np.testing.assert_allclose(pca.singular_values, s[:3], rtol=tol)
        np.testing.assert_allclose(pca.explained_variance_ratio, s[:3] ** 2 / np.sum(s ** 2), rtol=tol)
        np.testing.assert_allclose(pca.coordinates, coordinates, rtol=0, atol=tol * np.abs(coordinates).max())
        assert not pca.coordinates[-1].any()
    pca = th.trajectory_pca(steps)  # k = 2 by default
    assert pca.directions.shape == (2, 12)
    np.testing.assert_allclose(th.project_onto(pca, steps), pca.coordinates, rtol=0, atol=1e-12)
    np.testing.assert_allclose(th.project_onto(pca, steps[2]), pca.coordinates[2], rtol=0, atol=1e-12)


def test_a_pca_plane_plugs_into_the_landscape(problem, rng):
    model, sd, x, y = problem
    origin = th.parameter_vector(model)
    steps = np.cumsum(0.1 * rng.normal(size=(5, origin.size)), axis=0)
    trajectory = origin + (steps - steps[-1])  # a run that ends at the model's parameters
    pca = th.trajectory_pca(trajectory)
    coordinates = pca.coordinates
    got = th.evaluate_losses(model, x, y, pca.origin, pca.directions, coordinates)
    np.testing.assert_array_equal(th.evaluate_losses(model, x, y, pca.origin, list(pca.directions), coordinates), got)
    expected = [_mse(_as_state_dict(sd, pca.origin + c @ pca.directions), x, y) for c in coordinates]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_landscape_rejects_bad_input(problem, rng):
    model, _, x, y = problem
    p = model.parameter_count
    origin, d = th.parameter_vector(model), th.random_direction(model)
    with pytest.raises(ValueError, match=str(p)):
        th.filter_normalize(model, np.ones(p + 1), origin)
    with pytest.raises(ValueError, match="'nope'"):
        th.filter_normalize(model, d, origin, frozen=["nope"])
    with pytest.raises(TypeError):
        th.filter_normalize(model, d, origin, frozen="layers.0.")  # a list of prefixes, not a str
    bad = d.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError):
        th.filter_normalize(model, bad, origin)
    with pytest.raises(ValueError, match="normalization"):
        th.random_direction(model, normalization="unit")
    with pytest.raises(ValueError, match="loss"):
        th.loss_slice(model, x, y, origin, d, np.zeros(3), loss="hinge")
    with pytest.raises(ValueError, match=r"1-D"):
        th.loss_slice(model, x, y, origin, d, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=str(p)):
        th.loss_surface(model, x, y, origin, d, d[:-1], np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="coordinates"):
        th.evaluate_losses(model, x, y, origin, [d, d], np.zeros((4, 3)))
    with pytest.raises(ValueError):
        th.loss_interpolation(model, x, y, origin, bad, np.zeros(2))
    with pytest.raises(ValueError):
        th.loss_slice(model, x[:, :2], y, origin, d, np.zeros(2))  # the model's own error propagates
    with pytest.raises(TypeError):
        th.parameter_vector(None)
    walk = np.cumsum(rng.normal(size=(4, 6)), axis=0)
    with pytest.raises(ValueError, match="k"):
        th.trajectory_pca(walk, 4)  # at most T - 1 = 3
    with pytest.raises(ValueError, match="method"):
        th.trajectory_pca(walk, method="eig")
    with pytest.raises(ValueError, match="never leaves"):
        th.trajectory_pca(np.ones((4, 6)))
    with pytest.raises(TypeError):
        th.trajectory_pca(np.arange(24).reshape(4, 6))  # int64
    with pytest.raises(ValueError):
        th.project_onto(th.trajectory_pca(walk), np.zeros(7))
