"""theta.theory training dynamics: conserved quantities against their NumPy formulas and SGD runs,
deep linear networks against Saxe's closed form, model specs and state dicts."""

import json

import numpy as np
import pytest

import theta.theory as th
from theory_helpers import forward, mlp_state_dict

# ---- conserved quantities ------------------------------------------------------------------------


def test_quantities_match_their_formulas(rng):
    w = rng.normal(size=(4, 3))
    b = rng.normal(size=4)
    w2 = rng.normal(size=(2, 4))
    np.testing.assert_allclose(th.translation_quantity(w), w.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(th.scale_quantity(w, b), (w**2).sum(axis=1) + b**2, rtol=1e-14)
    np.testing.assert_allclose(th.scale_quantity(w), (w**2).sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(th.rescale_quantity(w, b, w2), (w2**2).sum(axis=0) - (w**2).sum(axis=1) - b**2,
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(th.rescale_quantity(w, None, w2), (w2**2).sum(axis=0) - (w**2).sum(axis=1),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(th.balancedness(w, w2, b), w2.T @ w2 - w @ w.T - np.outer(b, b), atol=1e-13)
    np.testing.assert_allclose(th.balancedness(w, w2), w2.T @ w2 - w @ w.T, atol=1e-13)
    with pytest.raises(ValueError):
        th.rescale_quantity(w, b, rng.normal(size=(2, 5)))


def test_error_measures(rng):
    measured = rng.normal(size=(5, 3))
    predicted = measured + rng.normal(size=(5, 3)) * 1e-3
    magnitude = np.abs(rng.normal(size=(5, 3))) + 1
    ratio = np.abs(measured - predicted) / magnitude
    assert abs(th.max_relative_error(measured, predicted, magnitude) - ratio.max()) < 1e-15
    np.testing.assert_allclose(th.relative_error_per_step(measured, predicted, magnitude), ratio.max(axis=1),
                               rtol=1e-14)


def test_decay_and_oscillator_steps_are_exact_propagators():
    decay, gain = th.decay_step(0.7, 0.3)
    assert abs(decay - np.exp(-0.21)) < 1e-15 and abs(gain - (1 - np.exp(-0.21)) / 0.7) < 1e-15
    assert th.decay_step(0.0, 0.3) == (1.0, 0.3)
    expm = pytest.importorskip("scipy.linalg").expm
    for mass, damping, stiffness in [(1.0, 0.5, 2.0), (2.0, 4.0, 0.5), (1.0, 2.0, 1.0), (1.0, 0.0, 0.0)]:
        a = np.array([[0, 1, 0], [-stiffness / mass, -damping / mass, 1 / mass], [0, 0, 0]])
        e = expm(a * 0.37)
        transition, response = th.oscillator_step(mass, damping, stiffness, 0.37)
        np.testing.assert_allclose(transition, e[:2, :2], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(response, e[:2, 2], rtol=1e-12, atol=1e-14)


def relu_net(rng, widths=(3, 6, 5, 2)):
    sd = mlp_state_dict(rng, list(widths))
    return th.mlp_from_state_dict(sd, activation="relu"), sd


def test_symmetry_tracker_exact_laws_hold_under_sgd(rng):
    model, _ = relu_net(rng)
    x = rng.normal(size=(12, 3))
    labels = rng.integers(0, 2, size=12)
    w0 = {k: v.copy() for k, v in model.named_parameters().items()}
    tracker = th.SymmetryTracker().track_sequential(model, softmax_output=True)
    names = [tracker.history(i)["name"] for i in range(len(tracker))]
    assert names == ["rescale layers.0 -> layers.2", "rescale layers.2 -> layers.4", "translation layers.4"]
    tracker.run_sgd(model, x, labels, steps=50, lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=4,
                    loss="cross_entropy")
    assert tracker.steps == 50
    assert tracker.max_exact_error() < 1e-10
    assert tracker.max_continuous_error() < 0.5
    w1 = model.named_parameters()
    h = tracker.history(0)
    assert h["symmetry"] == "rescale" and h["measured"].shape == (51, 6) and h["time"].shape == (51,)
    np.testing.assert_allclose(h["time"], 0.05 * np.arange(51), rtol=1e-12)
    for row, w in [(0, w0), (50, w1)]:
        q = th.rescale_quantity(w["layers.0.weight"], w["layers.0.bias"], w["layers.2.weight"])
        np.testing.assert_allclose(h["measured"][row], q, rtol=1e-12, atol=1e-12)
    assert th.max_relative_error(h["measured"], h["exact"], h["magnitude"]) < 1e-10
    assert (w0["layers.0.weight"] != w1["layers.0.weight"]).any()  # training happened
    with pytest.raises(RuntimeError):  # already attached
        tracker.run_sgd(model, x, labels, steps=1, loss="cross_entropy")


def test_symmetry_tracker_by_name_and_errors(rng):
    model, _ = relu_net(rng, (3, 4, 2))
    x = rng.normal(size=(8, 3))
    y = rng.normal(size=(8, 2))
    t = th.SymmetryTracker()
    t.track_rescale("layers.0.weight", "layers.0.bias", "layers.2.weight").track_translation("layers.2.weight")
    t.track_scale("layers.0.weight", "layers.0.bias")
    t.track_balancedness("layers.0.weight", "layers.2.weight", "layers.0.bias")
    assert len(t) == 4
    t.run_sgd(model, x, y, steps=5, lr=0.01)
    assert t.steps == 5 and t.history(3)["measured"].shape == (6, 4, 4)
    bad = th.SymmetryTracker().track_rescale("layers.0.weight", "", "no_such.weight")
    with pytest.raises(ValueError, match="no_such"):
        bad.run_sgd(model, x, y, steps=1)
    with pytest.raises(TypeError):
        th.SymmetryTracker().attach(object())
    with pytest.raises(ValueError, match=r"\[8, 3\].*\[7, 2\]"):
        th.SymmetryTracker().run_sgd(model, x, y[:7], steps=1)


# ---- deep linear networks ------------------------------------------------------------------------


@pytest.fixture
def problem():
    return th.make_saxe_problem(samples=20, input_dim=6, output_dim=5, strengths=[3.0, 2.0, 1.0], seed=4)


def test_saxe_problem_structure(problem):
    x, y, u, s, v = (problem[k] for k in "xyusv")
    n = x.shape[0]
    np.testing.assert_allclose(x.T @ x / n, np.eye(6), atol=1e-12)
    sigma = th.input_output_correlation(x, y)
    np.testing.assert_allclose(sigma, y.T @ x / n, atol=1e-13)
    np.testing.assert_allclose(sigma, u @ np.diag(s) @ v.T, atol=1e-12)
    np.testing.assert_allclose(s, [3.0, 2.0, 1.0], rtol=1e-12)
    again = th.problem_from_data(x, y, 2)
    np.testing.assert_allclose(again["s"], [3.0, 2.0], rtol=1e-12)
    with pytest.raises(ValueError):
        th.problem_from_data(x * 2, y, 2)  # not whitened


def test_saxe_closed_form_and_ode():
    s, u0 = 2.0, 0.01
    t = np.linspace(0, 3, 7)
    closed = s * np.exp(2 * s * t) / (np.exp(2 * s * t) - 1 + s / u0)
    np.testing.assert_allclose(th.saxe_mode_strength(s, u0, t), closed, rtol=1e-13)
    half = th.saxe_half_time(s, u0)
    assert abs(th.saxe_mode_strength(s, u0, half) - s / 2) < 1e-12
    assert abs(half - np.log(s / u0 - 1) / (2 * s)) < 1e-14
    np.testing.assert_allclose(th.integrate_depth_d(2, s, u0, list(t), dt=1e-4), closed, rtol=1e-8)
    assert abs(th.depth_d_rate(3, s, 0.5) - 3 * 0.5 ** (4 / 3) * (s - 0.5)) < 1e-14


def test_balanced_init_and_measurements(problem, rng):
    u, v = problem["u"], problem["v"]
    u0 = np.array([0.1, 0.2, 0.05])
    weights = th.balanced_aligned_init([6, 4, 3, 5], u, v, u0, seed=1)
    assert [w.shape for w in weights] == [(4, 6), (3, 4), (5, 3)]
    product = weights[2] @ weights[1] @ weights[0]
    np.testing.assert_allclose(th.end_to_end(weights), product, atol=1e-14)
    np.testing.assert_allclose(product, u @ np.diag(u0) @ v.T, atol=1e-12)
    np.testing.assert_allclose(th.mode_strengths(weights, u, v), u0, atol=1e-12)
    for b, (w_in, w_out) in zip(th.deep_linear_balancedness(weights), zip(weights[:-1], weights[1:])):
        np.testing.assert_allclose(b, w_out.T @ w_out - w_in @ w_in.T, atol=1e-14)
        assert np.abs(b).max() < 1e-12
    random = th.random_init([6, 50, 5], 0.3, seed=2)
    assert [w.shape for w in random] == [(50, 6), (5, 50)]
    assert abs(np.concatenate([w.ravel() for w in random]).std() - 0.3) < 0.03
    w1, w2 = random[0][:3] * 0, rng.normal(size=(5, 3))
    two = [rng.normal(size=(3, 6)), w2]
    expected = np.array([np.sum((two[0] @ v[:, a] + two[1].T @ u[:, a]) ** 2) / 4 for a in range(3)])
    np.testing.assert_allclose(th.effective_initial_strength(two, u, v), expected, rtol=1e-12)
    del w1


def test_train_deep_linear_follows_saxe(problem):
    u, s, v = problem["u"], problem["s"], problem["v"]
    u0 = np.full(3, 0.01)
    weights = th.balanced_aligned_init([6, 5, 5], u, v, u0, seed=3)
    net = th.make_deep_linear_net(weights)
    for got, want in zip(th.linear_weights(net), weights):
        np.testing.assert_array_equal(got, want)
    x = problem["x"]
    np.testing.assert_allclose(net(x), x @ (weights[1] @ weights[0]).T, atol=1e-13)
    trace = th.train_deep_linear(net, problem, eta=1e-3, steps=3000, record_every=100, check_balancedness=True)
    times = trace["times"]
    assert times.shape == (31,) and trace["strengths"].shape == (31, 3)
    np.testing.assert_allclose(times, 1e-3 * 100 * np.arange(31), rtol=1e-12)
    theory = np.stack([th.saxe_mode_strength(sa, 0.01, times) for sa in s], axis=1)
    assert np.abs(trace["strengths"] - theory).max() < 0.02 * s.max()
    assert trace["max_step_law_error"] < 1e-12
    assert len(trace["losses"]) == 31 and trace["losses"][-1] < trace["losses"][0]
    np.testing.assert_allclose(trace["strengths"][-1], th.mode_strengths(th.linear_weights(net), u, v),
                               rtol=1e-12)
    crossing = th.crossing_times(list(times), trace["strengths"], s, fraction=0.5)
    for a in range(3):
        col = trace["strengths"][:, a]
        k = np.argmax(col >= s[a] / 2)
        expected = times[k - 1] + (s[a] / 2 - col[k - 1]) / (col[k] - col[k - 1]) * (times[k] - times[k - 1])
        assert abs(crossing[a] - expected) < 1e-12
        assert abs(crossing[a] - th.saxe_half_time(s[a], 0.01)) < 0.05
    with pytest.raises(KeyError):
        th.train_deep_linear(net, {"x": x}, steps=1)
    with pytest.raises(TypeError):
        th.linear_weights(th.SymmetryTracker())


# ---- model specs and state dicts -----------------------------------------------------------------


def test_specs_and_state_dicts(rng, tmp_path):
    spec_text = json.dumps({"widths": [3, 5, 2], "activation": "tanh", "bias": True, "parameterisation": "ntk",
                            "sigma_w": 1.5, "sigma_b": 0.2, "extra": 1})
    spec = th.parse_mlp_spec(spec_text)
    assert spec == {"widths": [3, 5, 2], "activation": "tanh", "bias": True, "parameterisation": "ntk",
                    "sigma_w": 1.5, "sigma_b": 0.2}
    (tmp_path / "model.json").write_text(spec_text)
    assert th.load_mlp_spec(str(tmp_path / "model.json")) == spec
    with pytest.raises(ValueError):
        th.parse_mlp_spec('{"widths": [3, 2]}')
    sd = mlp_state_dict(rng, [3, 5, 2], prefix="net.")
    np.savez(tmp_path / "w.npz", **sd)
    loaded = th.load_named_tensors(str(tmp_path / "w.npz"))
    assert sorted(loaded) == sorted(sd)
    folder = tmp_path / "weights"
    folder.mkdir()
    for name, value in sd.items():
        np.save(folder / f"{name}.npy", value)
    assert sorted(th.load_named_tensors(str(folder))) == sorted(sd)
    model = th.mlp_from_state_dict(loaded, spec=spec)
    x = rng.normal(size=(4, 3))
    plain = {k[len("net."):]: v for k, v in sd.items()}
    scaled = {k: (v * 1.5 / np.sqrt(v.shape[1]) if k.endswith("weight") else v * 0.2) for k, v in plain.items()}
    np.testing.assert_allclose(model(x), forward(scaled, x), rtol=1e-12, atol=1e-14)
    standard = th.mlp_from_state_dict(sd, activation="tanh")
    np.testing.assert_allclose(standard(x), forward(plain, x), rtol=1e-12, atol=1e-14)
    missing = dict(sd)
    del missing["net.2.bias"]
    with pytest.raises(ValueError, match="bias"):
        th.mlp_from_state_dict(missing, widths=[3, 5, 2], bias=True)
    wrong = dict(sd)
    wrong["net.2.weight"] = rng.normal(size=(2, 4))
    with pytest.raises(ValueError, match=r"\[2, 4\]"):
        th.mlp_from_state_dict(wrong, widths=[3, 5, 2])
    with pytest.raises(ValueError, match="parameterisation|parameterization"):
        th.mlp_from_state_dict(sd, parameterization="mup")
