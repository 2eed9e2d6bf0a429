#!/usr/bin/python3
"""theta called from Python, measured against its baselines in the same run.

Two ratios, each from interleaved rounds (baseline, theta, baseline, theta, ...), every
measurement in a fresh child process pinned to one CPU with one thread everywhere, medians of the
rounds quoted:

  step  the tiny deep-linear SGD step (3 bias-free 8x8 Linear layers, batch 16, MSE, float32)
        driven from a Python loop: theta.nn.train_step against the same step in PyTorch eager
        (zero_grad, forward, mse_loss, backward, step). PyTorch runs at its best: glibc malloc
        told to keep its big blocks (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_), the same
        OpenBLAS core. Target: theta >= 3x faster. Also reported: the same step written op by op
        in Python with theta.autograd (module call on a Var, nn.mse_loss, backward, opt.step), the
        per-call overhead a user pays who writes their own loop. Skipped when torch does not import.
  ntk   the empirical NTK of the 32-256-256-10 tanh MLP (NTK parameterisation, n = 256, float64,
        full [n, n, 10, 10] kernel) called from Python (theta.theory.ntk) against the C++
        benchmark of the same workload (BM_NtkStructured_F64/10 in build/bench/theta_bench).
        Target: within 5% of C++.

Usage: PYTHONPATH=build/python /usr/bin/python3 python/bench/bench_python.py [--rounds 5]
       [--cpu 1] [--build-dir build] [--only step|ntk]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# PyTorch's side at its best on glibc (see the module docstring).
TORCH_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def seconds_per_call(fn, min_time):
    """Calls fn in growing batches until one batch takes min_time; seconds per call of that batch."""
    fn()  # warm-up: first-call allocations and caches
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n
        n = max(n + 1, min(n * 10, int(n * 1.4 * min_time / max(elapsed, 1e-9))))


# ---- children: one workload each, prints seconds per call ----------------------------------

def tiny_deep_linear():
    """theta's side of the step: 3 bias-free 8x8 Linear layers, SGD, a batch of 16, float32."""
    import numpy as np
    import theta as th

    rng = np.random.default_rng(1)
    net = th.nn.mlp([8, 8, 8, 8], activation="identity", bias=False, dtype="float32", seed=1)
    opt = th.nn.SGD(net, lr=1e-3)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.standard_normal((16, 8)).astype(np.float32)
    return th, net, opt, x, y


def child_theta_step(min_time):
    th, net, opt, x, y = tiny_deep_linear()
    step = th.nn.train_step
    return seconds_per_call(lambda: step(net, opt, x, y, loss="mse"), min_time)


def child_theta_step_ops(min_time):
    th, net, opt, x, y = tiny_deep_linear()
    Var, mse_loss = th.autograd.Var, th.nn.mse_loss

    def step():
        opt.zero_grad()
        loss = mse_loss(net(Var(x)), y)
        loss.backward()
        opt.step()
        return loss.item()

    return seconds_per_call(step, min_time)


def child_torch_step(min_time):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(1)
    net = torch.nn.Sequential(*[torch.nn.Linear(8, 8, bias=False) for _ in range(3)])
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x, y = torch.randn(16, 8), torch.randn(16, 8)

    def step():
        opt.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return seconds_per_call(step, min_time)


def child_theta_ntk(min_time):
    import numpy as np
    import theta as th

    rng = np.random.default_rng(21)
    net = th.nn.mlp([32, 256, 256, 10], activation="tanh", parameterization="ntk", seed=21)
    x = rng.standard_normal((256, 32))
    return seconds_per_call(lambda: th.theory.ntk(net, x), min_time)


CHILDREN = {"theta_step": child_theta_step, "theta_step_ops": child_theta_step_ops, "torch_step": child_torch_step,
            "theta_ntk": child_theta_ntk}


# ---- parent ---------------------------------------------------------------------------------

def one_thread_env(extra=None):
    env = dict(os.environ)
    for var in ("THETA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env.setdefault("PYTHONPATH", str(ROOT / "build" / "python"))
    env.update(extra or {})
    return env


def run_child(name, args, extra_env=None):
    cmd = ["taskset", "-c", str(args.cpu), sys.executable, __file__, "--child", name,
           "--min-time", str(args.min_time)]
    out = subprocess.run(cmd, env=one_thread_env(extra_env), capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_cpp_ntk(args):
    bench = Path(args.build_dir) / "bench" / "theta_bench"
    cmd = ["taskset", "-c", str(args.cpu), str(bench), "--benchmark_filter=^BM_NtkStructured_F64/10$",
           f"--benchmark_min_time={args.min_time}", "--benchmark_format=json"]
    out = subprocess.run(cmd, env=one_thread_env(), capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    run = report["benchmarks"][0]
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[run["time_unit"]]
    return run["real_time"] * scale


def interleave(label, baseline, candidate, rounds):
    """Alternates baseline and candidate for `rounds` rounds; returns both medians (seconds)."""
    base_times, cand_times = [], []
    for r in range(rounds):
        base_times.append(baseline())
        cand_times.append(candidate())
        print(f"  {label} round {r + 1}/{rounds}: baseline {base_times[-1] * 1e6:.1f} us, "
              f"theta {cand_times[-1] * 1e6:.1f} us", flush=True)
    return statistics.median(base_times), statistics.median(cand_times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--cpu", type=int, default=1, help="the CPU every child is pinned to (default 1)")
    parser.add_argument("--build-dir", default=str(ROOT / "build"), help="theta's Release build (default build/)")
    parser.add_argument("--only", choices=["step", "ntk"], help="run one of the two comparisons")
    args = parser.parse_args()
    if args.child:
        print(CHILDREN[args.child](args.min_time))
        return 0

    import theta as th
    print(f"theta: {th.runtime_summary()} (children: 1 thread, pinned to CPU {args.cpu})")
    status = 0
    if args.only in (None, "step"):
        try:
            import torch
            print(f"torch {torch.__version__}")
            torch_env = {k: v for k, v in TORCH_MALLOC.items() if k not in os.environ}
            base, cand = interleave("step", lambda: run_child("torch_step", args, torch_env),
                                    lambda: run_child("theta_step", args), args.rounds)
            ratio = base / cand
            verdict = "ok" if ratio >= 3.0 else "BELOW TARGET"
            print(f"step: PyTorch eager {base * 1e6:.1f} us, theta.nn.train_step {cand * 1e6:.1f} us per step "
                  f"from Python: theta {ratio:.2f}x faster (target >= 3x) {verdict}")
            status |= ratio < 3.0
            base, ops = interleave("step, op by op", lambda: run_child("torch_step", args, torch_env),
                                   lambda: run_child("theta_step_ops", args), args.rounds)
            print(f"step op by op: PyTorch eager {base * 1e6:.1f} us, theta.autograd from Python {ops * 1e6:.1f} us: "
                  f"theta {base / ops:.2f}x faster (informational)")
        except ImportError:
            print("step: skipped (torch does not import; Debian: apt-get install python3-torch)")
    if args.only in (None, "ntk"):
        base, cand = interleave("ntk", lambda: run_cpp_ntk(args), lambda: run_child("theta_ntk", args), args.rounds)
        excess = cand / base - 1.0
        verdict = "ok" if excess <= 0.05 else "ABOVE TARGET"
        print(f"ntk: C++ {base * 1e3:.2f} ms, from Python {cand * 1e3:.2f} ms: Python/C++ = {cand / base:.3f} "
              f"(target <= 1.05) {verdict}")
        status |= excess > 0.05
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
