"""Ctrl-C stops long theta.theory calls: they release the GIL and poll for signals between steps."""

import os
import signal
import threading
import time

import pytest

import theta
import theta.theory as th
from theory_helpers import mlp

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="needs POSIX signals")


def interrupted(call, after=0.3):
    """Runs call() on the main thread with SIGINT sent after `after` seconds; returns the time it took."""
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
    return time.perf_counter() - start


def test_lanczos_stops_at_ctrl_c(rng):
    n = 2500
    a = rng.normal(size=(n, n))
    op = th.matrix_operator(a + a.T)
    # n full-reorthogonalisation steps take about 30 s uninterrupted.
    assert interrupted(lambda: th.lanczos(op, k=1, iterations=n)) < 3.0


def test_hutchinson_stops_at_ctrl_c(rng):
    n = 1500
    a = rng.normal(size=(n, n))
    # A million probes take minutes uninterrupted.
    assert interrupted(lambda: th.hutchinson_trace(a + a.T, probes=10**6)) < 3.0


@pytest.mark.parametrize("threads", [1, 2])
def test_tiled_ntk_stops_at_ctrl_c(rng, threads):
    model, _ = mlp(rng, [8, 512, 512, 4])
    x = rng.normal(size=(4000, 8))  # about a minute uninterrupted
    previous = theta.get_num_threads()
    try:
        assert interrupted(lambda: th.ntk_tiled(model, x, tile=16, form="trace", threads=threads)) < 3.0
    finally:
        theta.set_num_threads(previous)
    # The model is usable afterwards (its lock was released by the unwinding call).
    assert th.ntk(model, x[:3]).shape == (3, 3, 4, 4)


def test_per_sample_jacobians_stop_at_ctrl_c(rng):
    model, _ = mlp(rng, [8, 256, 256, 8])
    x = rng.normal(size=(400, 8))
    # One sample per Jacobian chunk: minutes uninterrupted.
    assert interrupted(lambda: th.ntk(model, x, method="jacobian", form="trace", max_bytes=1 << 22)) < 3.0
