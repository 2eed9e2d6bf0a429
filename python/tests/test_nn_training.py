"""Optimisers, train_step, loss_backward, clip_grad_norm and fit, against NumPy's forward,
backward and update rules."""

import _thread
import threading
import time

import numpy as np
import pytest

from theta import nn


def deep_linear(seed=0, width=8, depth=3):
    return nn.Sequential(*[nn.Linear(width, width, bias=False, seed=seed + i) for i in range(depth)])


def deep_linear_loss_and_grads(ws, x, y):
    """mean((x W1^T W2^T W3^T - y)^2) and its gradients, by hand."""
    hs = [x]
    for w in ws:
        hs.append(hs[-1] @ w.T)
    r = hs[-1] - y
    loss = np.mean(r ** 2)
    d = 2 * r / r.size
    grads = [None] * len(ws)
    for l in reversed(range(len(ws))):
        grads[l] = d.T @ hs[l]
        d = d @ ws[l]
    return loss, grads


def weights(net):
    return [net[i].weight.copy() for i in range(len(net))]


def test_train_step_equals_manual_forward_backward_and_sgd(rng):
    net = deep_linear()
    opt = nn.SGD(net, lr=0.05)
    x, y = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
    for _ in range(3):
        ws = weights(net)
        want_loss, grads = deep_linear_loss_and_grads(ws, x, y)
        assert nn.train_step(net, opt, x, y, loss="mse") == pytest.approx(want_loss, rel=1e-13)
        for w, g, got in zip(ws, grads, weights(net)):
            np.testing.assert_allclose(got, w - 0.05 * g, rtol=1e-13, atol=1e-15)
    assert opt.steps_taken == 3


def test_sgd_step_with_momentum_and_weight_decay_equals_numpy(rng):
    net = deep_linear(seed=3)
    opt = nn.SGD(net, lr=0.1, momentum=0.9, weight_decay=0.01)
    x, y = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
    ws = weights(net)
    bufs = None
    for _ in range(3):
        opt.zero_grad()
        loss = nn.loss_backward(net, x, y)
        want_loss, grads = deep_linear_loss_and_grads(ws, x, y)
        assert loss == pytest.approx(want_loss, rel=1e-13)
        for name, g in zip(net.named_grads(), grads):
            np.testing.assert_allclose(net.named_grads()[name], g, rtol=1e-12, atol=1e-15)
        opt.step()
        ds = [g + 0.01 * w for g, w in zip(grads, ws)]
        bufs = ds if bufs is None else [0.9 * b + d for b, d in zip(bufs, ds)]
        ws = [w - 0.1 * b for w, b in zip(ws, bufs)]
        for want, got in zip(ws, weights(net)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    state = opt.state_dict()
    assert int(state["step"]) == 3
    np.testing.assert_allclose(state["momentum.layers.0.weight"], bufs[0], rtol=1e-12)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_and_adamw_steps_equal_numpy(rng, decoupled):
    net = deep_linear(seed=5)
    lr, b1, b2, eps, wd = 1e-2, 0.8, 0.99, 1e-8, 0.05
    cls = nn.AdamW if decoupled else nn.Adam
    opt = cls(net, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    x, y = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
    ws = weights(net)
    m = [np.zeros_like(w) for w in ws]
    v = [np.zeros_like(w) for w in ws]
    for t in range(1, 4):
        nn.train_step(net, opt, x, y)
        _, grads = deep_linear_loss_and_grads(ws, x, y)
        new = []
        for i, (w, g) in enumerate(zip(ws, grads)):
            if decoupled:
                w = w * (1 - lr * wd)
            else:
                g = g + wd * w
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            denom = np.sqrt(v[i]) / np.sqrt(1 - b2 ** t) + eps
            new.append(w - lr / (1 - b1 ** t) * m[i] / denom)
        ws = new
        for want, got in zip(ws, weights(net)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)


def test_optimizer_properties_and_state_round_trip(rng):
    net = deep_linear()
    opt = nn.SGD(net, lr=0.1, momentum=0.5)
    assert isinstance(opt, nn.Optimizer) and opt.model is net and opt.lr == 0.1
    opt.lr = 0.01
    assert opt.lr == 0.01
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.lr = -1.0
    x, y = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    nn.train_step(net, opt, x, y)
    twin = net.clone()
    twin_opt = nn.SGD(twin, lr=0.01, momentum=0.5)
    twin_opt.load_state_dict(opt.state_dict())
    assert twin_opt.steps_taken == 1
    assert nn.train_step(net, opt, x, y) == nn.train_step(twin, twin_opt, x, y)
    np.testing.assert_array_equal(net[0].weight, twin[0].weight)
    with pytest.raises(ValueError, match="missing optimizer state 'step'"):
        twin_opt.load_state_dict({})
    assert "optimizer" in repr(opt)
    with pytest.raises(ValueError, match="nesterov"):
        nn.SGD(net, nesterov=True)


def test_train_step_errors(rng):
    net, other = deep_linear(), deep_linear()
    opt = nn.SGD(net)
    x, y = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    with pytest.raises(ValueError, match="another model"):
        nn.train_step(other, opt, x, y)
    with pytest.raises(ValueError, match='loss must be "mse", "cross_entropy" or "binary_logistic", got "l1"'):
        nn.train_step(net, opt, x, y, loss="l1")
    with pytest.raises(TypeError, match="int64 class labels"):
        nn.train_step(net, opt, x, y, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"\[4, 8\].*\[4, 3\]|\[4, 3\].*\[4, 8\]"):
        nn.train_step(net, opt, x, y[:, :3])
    with pytest.raises(TypeError):
        nn.train_step(net, opt, x.astype(np.float32), y)


def test_train_step_cross_entropy_matches_numpy(rng):
    net = nn.Sequential(nn.Linear(5, 4, seed=2))
    opt = nn.SGD(net, lr=0.5)
    x, labels = rng.normal(size=(6, 5)), rng.integers(0, 4, size=6)
    w, b = net[0].weight.copy(), net[0].bias.copy()
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = -np.mean(np.log(p[np.arange(6), labels]))
    assert nn.train_step(net, opt, x, labels, loss="cross_entropy") == pytest.approx(want, rel=1e-13)
    d = (p - np.eye(4)[labels]) / 6
    np.testing.assert_allclose(net[0].weight, w - 0.5 * d.T @ x, rtol=1e-12)
    np.testing.assert_allclose(net[0].bias, b - 0.5 * d.sum(0), rtol=1e-12)


def test_clip_grad_norm(rng):
    net = deep_linear()
    x, y = rng.normal(size=(4, 8)), 10 * rng.normal(size=(4, 8))
    nn.loss_backward(net, x, y)
    grads = list(net.named_grads().values())
    total = np.sqrt(sum(np.sum(g ** 2) for g in grads))
    assert nn.clip_grad_norm(net, 0.5) == pytest.approx(total, rel=1e-12)
    clipped = list(net.named_grads().values())
    assert np.sqrt(sum(np.sum(g ** 2) for g in clipped)) == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(clipped[0], grads[0] * (0.5 / (total + 1e-6)), rtol=1e-12)


def digits_problem():
    x, y = nn.load_digits()
    return nn.Standardizer.fit(x).apply(x), y


def test_fit_reduces_the_loss_on_digits_and_prints_progress(capsys):
    x, y = digits_problem()
    net = nn.mlp([64, 32, 10], seed=0)
    opt = nn.SGD(net, lr=0.05, momentum=0.9)
    before = nn.evaluate(net, x, y)
    seen = []
    logs = nn.fit(net, opt, x, y, loss="cross_entropy", epochs=3, batch_size=64, seed=1, on_epoch=seen.append)
    after = nn.evaluate(net, x, y)
    assert [log["epoch"] for log in logs] == [0, 1, 2]
    assert seen == logs
    assert logs[-1]["train_loss"] < logs[0]["train_loss"]
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] > 0.9
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3  loss ") and lines[2].startswith("epoch 3/3  loss ")
    assert float(lines[2].split()[3]) == pytest.approx(logs[2]["train_loss"], rel=1e-5)
    assert opt.steps_taken == 3 * int(np.ceil(1797 / 64))


def test_fit_resumes_exactly_and_respects_progress_flags(capsys, rng):
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    a, b = nn.mlp([3, 5, 2], seed=4), nn.mlp([3, 5, 2], seed=4)
    oa, ob = nn.SGD(a, lr=0.1), nn.SGD(b, lr=0.1)
    full = nn.fit(a, oa, x, y, loss="mse", epochs=4, batch_size=8, progress=False)
    nn.fit(b, ob, x, y, loss="mse", epochs=2, batch_size=8, progress=False)
    rest = nn.fit(b, ob, x, y, loss="mse", epochs=4, batch_size=8, first_epoch=2, log_every=2)
    assert [r["train_loss"] for r in rest] == [f["train_loss"] for f in full[2:]]
    np.testing.assert_array_equal(a(x), b(x))
    assert capsys.readouterr().out.strip().splitlines() == [f"epoch 4/4  loss {rest[-1]['train_loss']:.6g}  "
                                                            f"{rest[-1]['seconds']:.2f}s"]


def test_fit_errors_and_non_finite_loss(rng):
    net = nn.mlp([3, 2], seed=0)
    opt = nn.SGD(net, lr=0.1)
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        nn.fit(net, opt, x, np.zeros(9, dtype=np.int64))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        nn.fit(net, opt, x, np.zeros(10, dtype=np.int64), batch_size=0)
    with pytest.raises(TypeError, match="int64 class labels"):
        nn.fit(net, opt, x, np.zeros(10))
    bad = x.copy()
    bad[3, 1] = np.nan
    before = net.state_dict()
    with pytest.raises(nn.NonFiniteLossError, match="non-finite loss nan at epoch 0, batch 0"):
        nn.fit(net, opt, bad, np.zeros((10, 2)), loss="mse", progress=False)
    assert issubclass(nn.NonFiniteLossError, ArithmeticError)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])

    def stop(log):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        nn.fit(net, opt, x, np.zeros((10, 2)), loss="mse", epochs=5, progress=False, on_epoch=stop)


def test_on_epoch_may_evaluate_and_checkpoint_the_model(tmp_path, rng):
    x, y = rng.normal(size=(30, 3)), rng.integers(0, 2, size=30)
    net = nn.mlp([3, 4, 2], seed=1)
    opt = nn.Adam(net, lr=0.01)
    seen = []

    def on_epoch(log):
        seen.append((nn.evaluate(net, x, y)["loss"], net.state_dict()))
        nn.save_checkpoint(tmp_path / f"epoch{log['epoch']}.npz", net, opt)
        opt.lr = opt.lr / 2

    nn.fit(net, opt, x, y, epochs=3, batch_size=8, progress=False, on_epoch=on_epoch)
    assert len(seen) == 3 and opt.lr == pytest.approx(0.01 / 8)
    restored = nn.mlp([3, 4, 2], seed=9)
    nn.load_checkpoint(tmp_path / "epoch1.npz", restored)
    for k, v in seen[1][1].items():
        np.testing.assert_array_equal(restored.state_dict()[k], v)
    assert seen[2][0] == nn.evaluate(net, x, y)["loss"]


def test_fit_stops_at_ctrl_c_between_batches():
    x, y = digits_problem()
    net = nn.mlp([64, 32, 10], seed=0)
    opt = nn.SGD(net, lr=0.01)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            nn.fit(net, opt, x, y, epochs=100000, batch_size=32, progress=False)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 30
    assert 0 < opt.steps_taken < 100000 * 57
    assert np.all(np.isfinite(net(x)))


def test_fit_releases_the_gil():
    """A Python thread keeps counting while fit trains: fit holds no GIL while it works."""
    x, y = digits_problem()
    net = nn.mlp([64, 64, 10], seed=0)
    opt = nn.SGD(net, lr=0.01)
    counter = [0]
    done = threading.Event()

    def count():
        while not done.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.01)
        start = time.monotonic()
        before = counter[0]
        nn.fit(net, opt, x, y, epochs=20, batch_size=16, progress=False)
        during = counter[0] - before
        elapsed = time.monotonic() - start
    finally:
        done.set()
        t.join()
    # Holding the GIL, fit would let the counter move only before it started; released, the
    # counter runs throughout (a Python loop counts millions per second).
    assert elapsed > 0.05 and during > 1000


def test_short_calls_keep_pace_beside_a_busy_python_thread(rng):
    """Short calls keep the GIL: releasing it would wait out the busy thread's switch interval
    (5 ms) at every call, more than 10 s for these. The bound is set against the same calls
    without the busy thread, measured first, so that a slow build (sanitizers) or a loaded
    machine scales it, while a wait at every call stays far outside it."""
    net = nn.mlp([8, 8, 8, 8], activation="identity", bias=False, seed=1)
    opt = nn.SGD(net, lr=1e-3)
    x, y = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))

    def short_calls():
        start = time.monotonic()
        for _ in range(2000):
            nn.train_step(net, opt, x, y)
        for _ in range(300):
            opt.zero_grad()
            nn.loss_backward(net, x, y)
            opt.step()
            opt.lr = opt.lr
            nn.mse_loss(net(x), y)
            nn.predict(net, x)
            nn.softplus(x)
        return time.monotonic() - start

    alone = short_calls()
    done = threading.Event()

    def busy():
        while not done.is_set():
            pass

    t = threading.Thread(target=busy)
    t.start()
    try:
        beside = short_calls()
    finally:
        done.set()
        t.join()
    # The busy thread takes the GIL every switch interval between calls, so some slowdown is
    # expected; 2300 waits of 5 ms would add 11.5 s.
    assert beside < 3.0 * alone + 3.0, (alone, beside)
    assert opt.steps_taken == 4600


def test_train_step_waits_for_a_model_another_thread_trains(rng):
    x, y = rng.normal(size=(64, 4)), rng.normal(size=(64, 2))
    net = nn.mlp([4, 4, 2], seed=0)
    opt = nn.SGD(net, lr=1e-3)
    started = threading.Event()

    def train():
        started.set()
        nn.fit(net, opt, x, y, loss="mse", epochs=300, batch_size=8, progress=False)

    t = threading.Thread(target=train)
    t.start()
    started.wait()
    for _ in range(3):
        assert np.isfinite(nn.train_step(net, opt, x[:8], y[:8]))
    t.join()
    assert opt.steps_taken == 300 * 8 + 3
