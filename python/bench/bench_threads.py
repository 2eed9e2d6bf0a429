"""Two Python threads computing empirical NTKs at once against the same calls one after the other.

theta.theory.ntk releases the GIL for its whole run, so two threads on two models run in parallel.
theta's own worker pool and OpenBLAS are held to one thread each, so any speedup comes from the
two Python threads alone. Run with PYTHONPATH=<build>/python python3 python/bench/bench_threads.py.
"""

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy and theta load OpenBLAS

import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import theta  # noqa: E402
import theta.theory as th  # noqa: E402


def make_model(rng, widths):
    sd = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        sd[f"{2 * i}.weight"] = rng.normal(size=(b, a)) / np.sqrt(a)
        sd[f"{2 * i}.bias"] = rng.normal(size=b) * 0.1
    return th.mlp_from_state_dict(sd, activation="relu")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=512, help="samples per kernel")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (the best is kept)")
    parser.add_argument("--form", default="trace", choices=["trace", "full"])
    args = parser.parse_args()

    theta.set_num_threads(1)
    rng = np.random.default_rng(0)
    widths = [32, 256, 256, 10]
    models = [make_model(rng, widths) for _ in range(2)]
    inputs = [rng.normal(size=(args.n, widths[0])) for _ in range(2)]
    results = [None, None]

    def call(i):
        results[i] = th.ntk(models[i], inputs[i], form=args.form)

    call(0)  # warm-up: first-touch allocations, BLAS initialisation
    serial, parallel = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        call(0)
        call(1)
        serial.append(time.perf_counter() - start)
        expected = [r.copy() for r in results]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        parallel.append(time.perf_counter() - start)
        for got, want in zip(results, expected):
            assert np.array_equal(got, want), "threaded result differs from the serial one"

    s, p = min(serial), min(parallel)
    print(f"ntk of a {'-'.join(map(str, widths))} MLP, n = {args.n}, form = {args.form}, "
          f"theta threads = {theta.get_num_threads()}, cores = {os.cpu_count()}")
    print(f"one after the other: {s:.3f} s   two Python threads: {p:.3f} s   speedup: {s / p:.2f}x")


if __name__ == "__main__":
    main()
