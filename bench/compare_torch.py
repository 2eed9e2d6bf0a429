#!/usr/bin/python3
"""theta's fixed-name benchmarks side by side with the same workloads in PyTorch.

Every row of the table is one workload of build/bench/theta_bench (bench/*.cpp) rewritten in
eager PyTorch 1.13 (functorch for the Jacobian-based NTK). The two sides run interleaved
(theta, PyTorch, theta, PyTorch, ...) for several rounds, each measurement in a fresh child
process with the same thread count, and the table quotes medians of the rounds, since a shared
machine is noisy. Times are wall-clock per call (Google Benchmark's real_time for theta).

Besides timing, the script
  * checks that theta and PyTorch compute the same NTK: theta's ntk_demo dumps weights, inputs
    and its kernel (--dump), and PyTorch recomputes the kernel in float64 from them;
  * reports the peak resident memory of the NTK workloads on both sides, each in a fresh child
    (ru_maxrss from wait4), against the n * O * P * 8 bytes a per-sample Jacobian would take.

This is an optional tool: PyTorch is never a dependency of theta or its tests. It needs
Debian's python3-torch (apt-get install -y python3-torch) and runs with /usr/bin/python3.

Usage: bench/compare_torch.py [--threads 1,2] [--rounds 3] [--filter REGEX] [--quick] [--heavy-rounds] [--markdown]
"""

import argparse
import datetime
import fcntl
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---- the workloads ---------------------------------------------------------------------------

# One entry per row: theta's benchmark name (as listed by --benchmark_list_tests, without a
# "/real_time" suffix), the PyTorch implementation (a setup function in the child section
# below), whether a single run is enough (runs of many seconds), and a short description.
WORKLOADS = [
    ("BM_Matmul_F32/1024", "matmul_f32", False, "C = A B, 1024^3, float32"),
    ("BM_CblasSgemm/1024", "matmul_f32_out", False, "same into a preallocated C (raw sgemm)"),
    ("BM_Matmul_F64/1024", "matmul_f64", False, "C = A B, 1024^3, float64"),
    ("BM_CblasDgemm/1024", "matmul_f64_out", False, "same into a preallocated C (raw dgemm)"),
    ("BM_Relu_F32/16777216", "relu", False, "relu of 16M floats"),
    ("BM_Add_F32/16777216", "add", False, "a + b, 16M floats"),
    ("BM_Tanh_F32/16777216", "tanh", False, "tanh of 16M floats"),
    ("BM_Exp_F32/16777216", "exp", False, "exp of 16M floats"),
    ("BM_Sum_F32/16777216", "sum", False, "sum of 16M floats"),
    ("BM_Memcpy_F32/16777216", "copy", False, "copy of 16M floats"),
    ("BM_TinyDeepLinearStep", "tiny_step", False, "3x Linear(8,8) no bias, batch 16, MSE, SGD step"),
    ("BM_MlpGrad_F32", "mlp_grad", False, "MLP 784-512-512-10, batch 128: grad of CE"),
    ("BM_MlpHvp_F32", "mlp_hvp", False, "same: one Hessian-vector product"),
    ("BM_MlpForward_F32", "mlp_forward", False, "same: forward pass alone, as a function of the weights"),
    ("BM_MlpJvp_F32", "mlp_jvp", False, "same: J v of the outputs in the weights, forward mode (functorch.jvp)"),
    ("BM_MlpHvpFwdRev_F32", "mlp_hvp_fwdrev", False, "same: H v forward over reverse (functorch jvp(grad))"),
    ("BM_MlpTrainStep_F32", "mlp_train_step", False, "same: one SGD step"),
    ("BM_Hvp_Lanczos20_F64", "lanczos20", False, "same MLP in float64: 20 Lanczos steps"),
    ("BM_NtkStructured_F64/1", "ntk_structured_1", False, "NTK 32-256-256-1, n=256: structured"),
    ("BM_NtkStructured_F64/10", "ntk_structured_10", False, "NTK 32-256-256-10, n=256: structured"),
    ("BM_NtkContraction_F64/1", "ntk_contraction_1", False, "NTK O=1: vmap(jacrev) + einsum"),
    ("BM_NtkContraction_F64/10", "ntk_contraction_10", True, "NTK O=10: vmap(jacrev) + einsum"),
    ("BM_Conv2dTrainStep_F32", "cnn_train_step", False, "CNN 1-32-64 3x3 + GAP + Linear, 128 digits: SGD step"),
    ("BM_NtkStructuredCnn_F64", "cnn_ntk_full", True, "NTK of that CNN, 256 digits, [n,n,10,10]: vs vmap(jacrev)"),
    ("BM_NtkStructuredCnnTrace_F64", "cnn_ntk_trace", True, "same, trace over outputs [n,n]: vs vmap(jacrev)"),
    ("BM_NtkTiledCnn_F64/32", "cnn_ntk_full", True, "full kernel again in 32 x 32 tiles: vs vmap(jacrev)"),
]

# Extra PyTorch variants shown under a theta row: (theta name, torch key, single run, label).
EXTRA_ROWS = [
    ("BM_NtkStructured_F64/1", "ntk_nvp_1", False, "  same vs functorch NTK-vector products"),
    ("BM_Conv2dTrainStep_F32", "cnn_train_step@avx2", False, "  same vs PyTorch with oneDNN capped at AVX2"),
]
# A key ending in "@avx2" runs its workload in a child whose oneDNN may use AVX2 at most
# (ONEDNN_MAX_CPU_ISA): PyTorch's convolutions do not go through OpenBLAS, so OPENBLAS_CORETYPE
# does not limit them, and with theta's OpenBLAS held to Haswell kernels (AVX2) this row compares
# the two at the same instruction set.
ISA_CAP_SUFFIX = "@avx2"
# (The NTK-vector products cost n * O vjp + jvp pairs over the whole batch: O = 10 takes about a
# minute per run in PyTorch 1.13 on one core, so only O = 1 is measured.)

# Workloads whose peak memory is reported.
MEMORY_WORKLOADS = [
    "BM_NtkStructured_F64/1",
    "BM_NtkStructured_F64/10",
    "BM_NtkContraction_F64/1",
    "BM_NtkContraction_F64/10",
    "BM_NtkStructuredCnn_F64",
    "BM_NtkTiledCnn_F64/32",
]

# glibc malloc settings for the PyTorch children, so PyTorch runs at its best: by default glibc
# hands blocks above its mmap threshold straight back to the system and trims the heap, so each of
# PyTorch's large temporaries costs fresh pages (and their faults) on every call. These keep them in
# the heap. They change PyTorch's times a lot here: its CNN training step takes ~46 ms without
# them and ~7 ms with them on one core; its MLP times halve. A caller's own values are kept.
TORCH_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824"}

# Set by main(): extra environment of the PyTorch children, and the lock file held around
# each measurement (None: no lock).
TORCH_ENV = {}
LOCK_PATH = None

NTK_N, NTK_D, NTK_WIDTH = 256, 32, 256
STREAM_N = 1 << 24
MLP_WIDTHS = (784, 512, 512, 10)
MLP_BATCH = 128


CNN_CHANNELS = (1, 32, 64)  # 3x3 convolutions with padding 1 on 8x8 digits, then GAP and Linear(64 -> 10)
CNN_OUTPUTS = 10
CNN_TRAIN_BATCH, CNN_NTK_N = 128, 256


def cnn_parameter_count():
    """Parameters of the CNN benchmarks' network (with biases)."""
    convs = sum(c_out * c_in * 9 + c_out for c_in, c_out in zip(CNN_CHANNELS, CNN_CHANNELS[1:]))
    return convs + CNN_CHANNELS[-1] * CNN_OUTPUTS + CNN_OUTPUTS


def ntk_parameter_count(outputs):
    """Parameters of the NTK benchmark's MLP 32-256-256-O with biases."""
    widths = (NTK_D, NTK_WIDTH, NTK_WIDTH, outputs)
    return sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(widths) - 1))


# ---- PyTorch side: runs only in child processes ----------------------------------------------
#
# The parent never imports torch, so every measurement starts from a clean process whose thread
# pools were sized by the environment (OMP/MKL/OPENBLAS_NUM_THREADS) before torch loaded.


def torch_setup(key, torch):
    """Builds the PyTorch workload `key`; returns a zero-argument function that runs it once."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(1)

    def normal(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    def uniform(n, lo, hi):
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    if key.startswith("matmul_"):
        dtype = torch.float32 if "f32" in key else torch.float64
        a, b = normal(1024, 1024, dtype=dtype), normal(1024, 1024, dtype=dtype)
        if key.endswith("_out"):
            c = torch.empty(1024, 1024, dtype=dtype)
            return lambda: torch.matmul(a, b, out=c)
        return lambda: torch.matmul(a, b)
    if key in ("relu", "tanh", "exp", "copy"):
        x = uniform(STREAM_N, -10.0, 10.0) if key == "exp" else uniform(STREAM_N, -4.0, 4.0)
        if key == "copy":
            y = torch.empty_like(x)
            return lambda: y.copy_(x)
        return lambda: getattr(torch, key)(x)
    if key == "add":
        a, b = uniform(STREAM_N, -4.0, 4.0), uniform(STREAM_N, -4.0, 4.0)
        return lambda: torch.add(a, b)
    if key == "sum":
        x = uniform(STREAM_N, -4.0, 4.0)
        return lambda: torch.sum(x)
    if key == "tiny_step":
        torch.manual_seed(1)
        net = torch.nn.Sequential(*[torch.nn.Linear(8, 8, bias=False) for _ in range(3)])
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        x, y = normal(16, 8), normal(16, 8)

        def step():
            opt.zero_grad()
            loss = F.mse_loss(net(x), y)
            loss.backward()
            opt.step()
        return step
    if key in ("mlp_grad", "mlp_train_step", "mlp_hvp", "lanczos20", "mlp_forward", "mlp_jvp", "mlp_hvp_fwdrev"):
        return torch_mlp_workload(key, torch, F, normal)
    if key.startswith("ntk_"):
        return torch_ntk_workload(key, torch, normal)
    if key.startswith("cnn_"):
        return torch_cnn_workload(key, torch, F)
    raise KeyError(key)


def first_digits(n):
    """The first n 8x8 digits of theta's data set as [n, 64] pixel values / 16, and their labels."""
    import gzip

    import numpy as np

    with gzip.open(ROOT / "data" / "digits.csv.gz", "rt") as f:
        rows = np.loadtxt(f, delimiter=",", max_rows=n)
    return rows[:, :64] / 16.0, rows[:, 64].astype(np.int64)


def torch_cnn_workload(key, torch, F):
    """The CNN of bench/bench_cnn.cpp: 3x3 convolutions (padding 1) 1 -> 32 -> 64 with ReLU, global
    average pooling, Linear(64 -> 10). Training: float32, PyTorch's default init, SGD on the first
    128 digits. Kernels: float64, NTK parameterisation (N(0, 1) parameters, sigma_w = 1, sigma_b = 0),
    the first 256 digits, by functorch vmap(jacrev) and einsum contraction."""
    torch.manual_seed(3)
    if key == "cnn_train_step":
        x, y = first_digits(CNN_TRAIN_BATCH)
        x = torch.from_numpy(x).float().reshape(-1, 1, 8, 8)
        y = torch.from_numpy(y)
        layers = []
        for c_in, c_out in zip(CNN_CHANNELS, CNN_CHANNELS[1:]):
            layers += [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                  torch.nn.Linear(CNN_CHANNELS[-1], CNN_OUTPUTS))
        opt = torch.optim.SGD(net.parameters(), lr=1e-2)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
        return step
    params = []
    for c_in, c_out in zip(CNN_CHANNELS, CNN_CHANNELS[1:]):
        params += [torch.randn(c_out, c_in, 3, 3, dtype=torch.float64), torch.randn(c_out, dtype=torch.float64)]
    params += [torch.randn(CNN_OUTPUTS, CNN_CHANNELS[-1], dtype=torch.float64),
               torch.randn(CNN_OUTPUTS, dtype=torch.float64)]
    params = tuple(params)
    x = torch.from_numpy(first_digits(CNN_NTK_N)[0])

    def forward(ps, inputs):
        h = inputs.reshape(-1, 1, 8, 8)
        for i in range(len(CNN_CHANNELS) - 1):
            w, b = ps[2 * i], ps[2 * i + 1]
            h = torch.relu(F.conv2d(h, w, padding=1) / math.sqrt(w.shape[1] * 9) + 0.0 * b[:, None, None])
        h = h.mean((2, 3))
        return h @ ps[-2].t() / math.sqrt(ps[-2].shape[1]) + 0.0 * ps[-1]

    if key in ("cnn_ntk_full", "cnn_ntk_trace"):
        return lambda: ntk_contraction(params, x, forward, torch, trace=key.endswith("trace"))
    raise KeyError(key)


def torch_mlp(torch, dtype):
    """The 784-512-512-10 ReLU MLP (nn.Linear's default uniform init, as theta's mlp())."""
    torch.manual_seed(2)
    layers = []
    for i in range(len(MLP_WIDTHS) - 1):
        layers.append(torch.nn.Linear(MLP_WIDTHS[i], MLP_WIDTHS[i + 1]))
        if i + 2 < len(MLP_WIDTHS):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(dtype)


def torch_mlp_workload(key, torch, F, normal):
    """MLP workloads: forward, JVP, gradient, both HVPs, SGD step (float32) and 20 Lanczos steps
    (float64)."""
    dtype = torch.float64 if key == "lanczos20" else torch.float32
    net = torch_mlp(torch, dtype)
    x = normal(MLP_BATCH, MLP_WIDTHS[0], dtype=dtype)
    labels = torch.randint(0, MLP_WIDTHS[-1], (MLP_BATCH,))
    params = list(net.parameters())
    if key == "mlp_grad":
        return lambda: torch.autograd.grad(F.cross_entropy(net(x), labels), params)
    if key == "mlp_train_step":
        opt = torch.optim.SGD(params, lr=1e-3)

        def step():
            opt.zero_grad()
            F.cross_entropy(net(x), labels).backward()
            opt.step()
        return step

    def functional_outputs(ps):
        h = x
        for i in range(0, len(ps), 2):
            h = F.linear(h, ps[i], ps[i + 1])
            if i + 2 < len(ps):
                h = torch.relu(h)
        return h

    def functional_loss(ps):
        return F.cross_entropy(functional_outputs(ps), labels)

    if key == "mlp_forward":
        ps = [p.detach() for p in params]
        return lambda: functional_outputs(ps)
    if key in ("mlp_jvp", "mlp_hvp_fwdrev"):
        import functorch
        ps = tuple(p.detach() for p in params)
        direction = tuple(normal(*p.shape, dtype=dtype) for p in params)
        if key == "mlp_jvp":
            return lambda: functorch.jvp(lambda *w: functional_outputs(w), ps, direction)

        # PyTorch 1.13 has no forward-mode rule for cross_entropy's backward (nll_loss_backward,
        # _log_softmax_backward_data): the same loss as logsumexp minus the label's logit.
        def loss(*w):
            z = functional_outputs(w)
            z = z - z.max(1, keepdim=True)[0].detach()
            return (torch.log(torch.exp(z).sum(1)) - z.gather(1, labels[:, None])[:, 0]).mean()
        return lambda: functorch.jvp(functorch.grad(loss, argnums=tuple(range(len(ps)))), ps, direction)
    if key == "mlp_hvp":
        direction = [normal(*p.shape, dtype=dtype) for p in params]

        def hvp():
            ps = [p.detach().requires_grad_() for p in params]
            g = torch.autograd.grad(functional_loss(ps), ps, create_graph=True)
            return torch.autograd.grad(g, ps, grad_outputs=direction)
        return hvp
    # Lanczos: the gradient graph is built once (as theta's hessian_operator), each step is one
    # backward through it, with full reorthogonalisation against the basis.
    ps = [p.detach().requires_grad_() for p in params]
    grads = torch.autograd.grad(functional_loss(ps), ps, create_graph=True)
    sizes = [p.numel() for p in ps]
    size = sum(sizes)

    def apply(v):
        pieces = [piece.view_as(p) for piece, p in zip(torch.split(v, sizes), ps)]
        hv = torch.autograd.grad(grads, ps, grad_outputs=pieces, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv])

    def lanczos(steps=20):
        rng = torch.Generator().manual_seed(14)
        basis = torch.empty(steps, size, dtype=torch.float64)
        q = torch.randn(size, generator=rng, dtype=torch.float64)
        basis[0] = q / q.norm()
        alpha, beta = [], []
        for j in range(steps):
            w = apply(basis[j])
            a = torch.dot(basis[j], w).item()
            w = w - a * basis[j]
            if j > 0:
                w = w - beta[-1] * basis[j - 1]
            before = w.norm().item()
            w = w - (basis[: j + 1] @ w) @ basis[: j + 1]
            b = w.norm().item()
            if b < 0.7071067811865476 * before:
                w = w - (basis[: j + 1] @ w) @ basis[: j + 1]
                b = w.norm().item()
            alpha.append(a)
            beta.append(b)
            if j + 1 < steps:
                basis[j + 1] = w / b
        t = torch.diag(torch.tensor(alpha, dtype=torch.float64))
        off = torch.tensor(beta[:-1], dtype=torch.float64)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
        return torch.linalg.eigvalsh(t)[-1]
    return lanczos


def ntk_forward(params, x, activation, sigma_w, sigma_b, torch):
    """MLP in NTK parameterisation: y = sigma_w / sqrt(in) x W^T + sigma_b b per layer.

    params is a flat tuple (W1, b1, W2, b2, ...) with W in PyTorch layout [out, in]; b may be
    omitted (params of length layers) when the model has no biases.
    """
    act = {"tanh": torch.tanh, "relu": torch.relu, "erf": torch.erf, "identity": lambda h: h}[activation]
    with_bias = len(params) % 2 == 0 and params[1].dim() == 1
    step = 2 if with_bias else 1
    layers = len(params) // step
    h = x
    for i in range(layers):
        w = params[i * step]
        h = (sigma_w / math.sqrt(w.shape[1])) * (h @ w.t())
        if with_bias:
            h = h + sigma_b * params[i * step + 1]
        if i + 1 < layers:
            h = act(h)
    return h


def ntk_contraction(params, x, forward, torch, trace=False):
    """Jacobian contraction (neural-tangents' "jacobian contraction"): per-sample Jacobians by
    vmap(jacrev), then K[i, j, a, b] = sum_P J[i, a, P] J[j, b, P] by einsum -> [n, n, O, O], or
    with trace K[i, j] = sum_a,P J[i, a, P] J[j, a, P] -> [n, n]."""
    from functorch import jacrev, vmap

    def single(ps, xi):
        return forward(ps, xi[None])[0]

    jac = vmap(jacrev(single), in_dims=(None, 0))(params, x)  # one [n, O, *p.shape] per param
    n = x.shape[0]
    kernel = None
    for j in jac:
        flat = j.reshape(n, j.shape[1], -1)
        term = torch.einsum("iap,jap->ij", flat, flat) if trace else torch.einsum("iap,jbp->ijab", flat, flat)
        kernel = term if kernel is None else kernel + term
    return kernel


def ntk_vector_products(params, x, forward, torch, chunk=256):
    """NTK-vector products (neural-tangents' "ntk-vector products"): column c of the kernel is
    J (J^T e_c), one vjp and one jvp per cotangent, vmapped over chunks of the n*O cotangents."""
    from functorch import jvp, vjp, vmap

    def f(*ps):
        return forward(ps, x)

    out, vjp_fn = vjp(f, *params)
    n, outputs = out.shape

    def column(cotangent):
        tangents = vjp_fn(cotangent)
        return jvp(f, tuple(params), tuple(tangents))[1]

    basis = torch.eye(n * outputs, dtype=out.dtype).reshape(n * outputs, n, outputs)
    columns = [vmap(column)(basis[i : i + chunk]) for i in range(0, n * outputs, chunk)]
    k = torch.cat(columns).reshape(n, outputs, n, outputs)  # [i, a, j, b]
    return k.permute(0, 2, 1, 3)


def ntk_structured(params, x, activation, sigma_w, sigma_b, torch):
    """The structured NTK of an MLP by hand (the algorithm of theta's NtkMethod::structured):
    per layer l, (sigma_w^2 / in A A^T + sigma_b^2) * (D D^T) with A the layer inputs and D the
    gradients of every output with respect to the layer's output (O backward passes)."""
    act = {"tanh": torch.tanh, "relu": torch.relu, "erf": torch.erf, "identity": lambda h: h}[activation]
    with_bias = len(params) % 2 == 0 and params[1].dim() == 1
    step = 2 if with_bias else 1
    layers = len(params) // step
    inputs, outputs = [], []
    h = x
    for i in range(layers):
        w = params[i * step]
        inputs.append(h.detach())
        y = (sigma_w / math.sqrt(w.shape[1])) * (h @ w.t())
        if with_bias:
            y = y + sigma_b * params[i * step + 1]
        outputs.append(y)
        h = act(y) if i + 1 < layers else y
    n, n_out = h.shape
    grads = [torch.empty(n, n_out, y.shape[1], dtype=h.dtype) for y in outputs]
    for o in range(n_out):
        g = torch.autograd.grad(h[:, o].sum(), outputs, retain_graph=o + 1 < n_out)
        for dst, src in zip(grads, g):
            dst[:, o] = src
    kernel = torch.zeros(n, n, n_out, n_out, dtype=h.dtype)
    for i in range(layers):
        a = inputs[i]
        aa = (sigma_w**2 / a.shape[1]) * (a @ a.t())
        if with_bias:
            aa = aa + sigma_b**2
        d = grads[i].reshape(n * n_out, -1)
        dd = (d @ d.t()).reshape(n, n_out, n, n_out).permute(0, 2, 1, 3)
        kernel += aa[:, :, None, None] * dd
    return kernel


def torch_ntk_workload(key, torch, normal):
    """NTK workloads on the MLP 32-256-256-O (tanh, biases, NTK parameterisation, sigma_w = 1,
    sigma_b = 0 as theta's MlpOptions defaults), n = 256 inputs, float64."""
    method, outputs = key.rsplit("_", 1)
    outputs = int(outputs)
    widths = (NTK_D, NTK_WIDTH, NTK_WIDTH, outputs)
    params = []
    for i in range(len(widths) - 1):
        params.append(normal(widths[i + 1], widths[i], dtype=torch.float64).requires_grad_())
        params.append(normal(widths[i + 1], dtype=torch.float64).requires_grad_())
    params = tuple(params)
    x = normal(NTK_N, NTK_D, dtype=torch.float64)

    def forward(ps, inputs):
        return ntk_forward(ps, inputs, "tanh", 1.0, 0.0, torch)

    if method == "ntk_structured":
        return lambda: ntk_structured(params, x, "tanh", 1.0, 0.0, torch)
    if method == "ntk_contraction":
        return lambda: ntk_contraction(params, x, forward, torch)
    if method == "ntk_nvp":
        return lambda: ntk_vector_products(params, x, forward, torch)
    raise KeyError(key)


def time_call(fn, min_time):
    """Seconds per call, measured as Google Benchmark does: batches of growing size until one
    batch lasts at least min_time; the last batch is the result. One untimed call first (lazy
    initialisation, first-touch memory), as theta's kernel benchmarks do."""
    fn()
    iterations = 1
    while True:
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or iterations >= 1_000_000_000:
            return elapsed / iterations
        per_call = max(elapsed / iterations, 1e-9)
        iterations = max(iterations + 1, min(10 * iterations, int(1.4 * min_time / per_call)))


def import_torch(threads):
    """Imports torch with `threads` intra-op threads (the environment was set by the parent)."""
    import torch

    torch.set_num_threads(threads)
    return torch


def child_run(args):
    """Child: times the requested workloads, prints {key: seconds per call} as JSON."""
    torch = import_torch(args.child_threads)
    results = {}
    for key in args.child_workloads.split(","):
        try:
            results[key] = time_call(torch_setup(key.removesuffix(ISA_CAP_SUFFIX), torch), args.child_min_time)
        except Exception as error:  # report and go on with the other workloads
            results[key] = None
            print(f"compare_torch: PyTorch workload {key} failed: {error!r}", file=sys.stderr)
    print(json.dumps(results))


def child_memory(args):
    """Child: runs one workload once (or nothing, for the baseline) and exits; the parent reads
    the child's peak resident memory."""
    torch = import_torch(args.child_threads)
    if args.child_workloads != "none":
        torch_setup(args.child_workloads, torch)()


def openblas_core_of_process():
    """The OpenBLAS core and thread count of the OpenBLAS loaded into this process, if any."""
    import ctypes

    for name in ("libopenblas.so.0", "libopenblasp-r0.3.21.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode(), lib.openblas_get_config().decode()
    return None, None


def child_info(args):
    """Child: prints torch's version, BLAS library, CPU capability and thread settings as JSON."""
    torch = import_torch(args.child_threads)
    torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS library
    config = torch.__config__.show()
    capability = re.search(r"CPU capability usage: (\S+)", config)
    blas_info = re.search(r"BLAS_INFO=([^,]+)", config)
    libraries = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if re.search(r"(blas|mkl|lapack|gomp|iomp)[^/]*\.so", path):
                libraries.add(os.path.realpath(path))
    core, openblas_config = openblas_core_of_process()
    try:
        import functorch

        functorch_version = functorch.__version__
    except ImportError:
        functorch_version = None
    print(json.dumps({
        "torch": torch.__version__,
        "functorch": functorch_version,
        "capability": capability.group(1) if capability else "unknown",
        "blas_info": blas_info.group(1) if blas_info else "unknown",
        "libraries": sorted(libraries),
        "openblas_core": core,
        "openblas_config": openblas_config,
        "threads": torch.get_num_threads(),
        "parallel": torch.__config__.parallel_info().splitlines()[-1].strip(),
    }))


def child_ntk_check(args):
    """Child: recomputes the NTK of ntk_demo's dumped model in PyTorch (float64) by Jacobian
    contraction and by the structured algorithm; prints the deviations from theta's kernel."""
    import numpy as np

    torch = import_torch(args.child_threads)
    folder = Path(args.child_workloads)
    model = json.loads((folder / "model.json").read_text())
    if model.get("parameterisation", "ntk") != "ntk":
        raise SystemExit("compare_torch: only NTK-parameterised dumps are supported")

    def layer_index(path):
        return [int(t) for t in re.findall(r"\d+", path.name)]

    weights = sorted(folder.glob("*weight.npy"), key=layer_index)
    params = []
    for w in weights:
        params.append(torch.from_numpy(np.load(w)).to(torch.float64).requires_grad_())
        b = w.with_name(w.name.replace("weight.npy", "bias.npy"))
        if model.get("bias", True) and b.exists():
            params.append(torch.from_numpy(np.load(b)).to(torch.float64).requires_grad_())
    x = torch.from_numpy(np.load(folder / "x.npy")).to(torch.float64)
    reference = torch.from_numpy(np.load(folder / "ntk.npy")).to(torch.float64)
    activation, sw, sb = model["activation"], float(model["sigma_w"]), float(model["sigma_b"])

    def forward(ps, inputs):
        return ntk_forward(ps, inputs, activation, sw, sb, torch)

    scale = reference.abs().max().item()
    report = {"shape": list(reference.shape), "params": sum(p.numel() for p in params),
              "sigma_w": model["sigma_w"], "sigma_b": model["sigma_b"]}
    for name, kernel in (("contraction", ntk_contraction(tuple(params), x, forward, torch)),
                         ("structured", ntk_structured(tuple(params), x, activation, sw, sb, torch))):
        kernel = kernel.detach()
        if list(kernel.shape) != list(reference.shape):
            report[name] = {"error": f"shape {list(kernel.shape)} vs theta's {list(reference.shape)}"}
            continue
        diff = (kernel - reference).abs().max().item()
        report[name] = {"max_abs": diff, "max_rel": diff / scale}
    print(json.dumps(report))


# ---- parent: theta side, scheduling, reporting -----------------------------------------------


def run_checked(cmd, env=None, timeout=None):
    """Runs cmd, returns its stdout; raises RuntimeError with its stderr on failure."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def thread_env(threads, for_torch=False):
    """Environment for a child that must use `threads` threads everywhere; PyTorch children also
    get TORCH_ENV (theta's OpenBLAS core, since they load the same libopenblas, the OpenMP wait
    policy and TORCH_MALLOC_ENV), without overriding what the caller exported."""
    env = dict(os.environ)
    for var in ("THETA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    if for_torch:
        for var, value in TORCH_ENV.items():
            if value and var not in os.environ:
                env[var] = value
    return env


class Lock:
    """Holds an exclusive flock on a file while alive (no-op without a path), so measurements
    can be kept apart from builds that take the same lock."""

    def __init__(self, path):
        self.file = open(path, "a") if path else None

    def __enter__(self):
        if self.file:
            fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.file:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def build_targets(build_dir, targets):
    """Builds the given CMake targets in build_dir (incremental); returns True on success."""
    if not (build_dir / "CMakeCache.txt").exists():
        print(f"compare_torch: {build_dir} is not a configured CMake build directory", file=sys.stderr)
        return False
    cmd = ["cmake", "--build", str(build_dir), "--target", *targets]
    print("compare_torch: building", " ".join(targets), file=sys.stderr)
    with Lock(LOCK_PATH):
        return subprocess.run(cmd, stdout=sys.stderr).returncode == 0


def theta_benchmark_names(bench):
    """Names of theta's benchmarks, without the "/real_time" suffix."""
    out = run_checked([str(bench), "--benchmark_list_tests"])
    return {strip_suffix(line.strip()) for line in out.splitlines() if line.strip()}


def strip_suffix(name):
    """Drops Google Benchmark's "/real_time" and "/manual_time" suffixes."""
    return re.sub(r"/(real|manual)_time$", "", name)


def exact_filter(names):
    """A --benchmark_filter regex that matches exactly these names (with any time suffix)."""
    return "^(" + "|".join(re.escape(n) for n in names) + ")(/real_time|/manual_time)?$"


def run_theta(bench, names, threads, min_time):
    """One theta_bench run over `names`; returns ({name: seconds per call}, {name: label},
    context)."""
    if not names:
        return {}, {}, {}
    cmd = [str(bench), f"--benchmark_filter={exact_filter(names)}", "--benchmark_format=json",
           f"--benchmark_min_time={min_time}"]
    with Lock(LOCK_PATH):
        report = json.loads(run_checked(cmd, env=thread_env(threads)))
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times, labels = {}, {}
    for b in report["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = strip_suffix(b.get("run_name", b["name"]))
        times[name] = b["real_time"] * scale[b.get("time_unit", "ns")]
        labels[name] = b.get("label", "")
    return times, labels, report.get("context", {})


def run_torch(keys, threads, min_time):
    """PyTorch child runs over the workload keys (one child, plus one with oneDNN capped at AVX2 for
    keys ending in ISA_CAP_SUFFIX); returns {key: seconds per call or None}."""
    capped = [k for k in keys if k.endswith(ISA_CAP_SUFFIX)]
    plain = [k for k in keys if not k.endswith(ISA_CAP_SUFFIX)]
    results = run_torch_child(plain, threads, min_time, {})
    results.update(run_torch_child(capped, threads, min_time, {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}))
    return results


def run_torch_child(keys, threads, min_time, extra_env):
    """One PyTorch child run over the workload keys with extra environment variables."""
    if not keys:
        return {}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "run", "--child-threads", str(threads),
           "--child-workloads", ",".join(keys), "--child-min-time", str(min_time)]
    with Lock(LOCK_PATH):
        proc = subprocess.run(cmd, env={**thread_env(threads, for_torch=True), **extra_env}, capture_output=True,
                              text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        print(f"compare_torch: PyTorch child failed ({proc.returncode})", file=sys.stderr)
        return {k: None for k in keys}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_of(cmd, env):
    """Runs cmd in a fresh child; returns its peak resident set size in bytes (ru_maxrss)."""
    with Lock(LOCK_PATH):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {err[-500:]}")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def measure_memory(bench, theta_names, names, threads):
    """Peak RSS of each NTK workload for theta and PyTorch, with each side's empty-process
    baseline; returns rows of dicts."""
    script = str(Path(__file__).resolve())
    torch_cmd = [sys.executable, script, "--child", "memory", "--child-threads", str(threads), "--child-workloads"]
    env_theta, env_torch = thread_env(threads), thread_env(threads, for_torch=True)
    theta_base = peak_rss_of([str(bench), "--benchmark_filter=^$"], env_theta) if theta_names else None
    torch_base = peak_rss_of(torch_cmd + ["none"], env_torch)
    rows = []
    for name in names:
        key = dict((w[0], w[1]) for w in WORKLOADS)[name]
        if "Cnn" in name:
            jacobian_bytes = CNN_NTK_N * CNN_OUTPUTS * cnn_parameter_count() * 8
        else:
            outputs = int(name.rsplit("/", 1)[1])
            jacobian_bytes = NTK_N * outputs * ntk_parameter_count(outputs) * 8
        row = {"name": name, "jacobian_bytes": jacobian_bytes,
               "theta_base": theta_base, "torch_base": torch_base, "theta": None, "torch": None}
        if name in theta_names:
            cmd = [str(bench), f"--benchmark_filter={exact_filter([name])}", "--benchmark_min_time=1e-9"]
            row["theta"] = peak_rss_of(cmd, env_theta)
        try:
            row["torch"] = peak_rss_of(torch_cmd + [key], env_torch)
        except RuntimeError as error:
            print(f"compare_torch: {error}", file=sys.stderr)
        rows.append(row)
    return rows


def ntk_check(build_dir, threads):
    """Checks theta's NTK against PyTorch's on ntk_demo's dump; returns (verdict, details)."""
    demo = build_dir / "theory" / "demos" / "ntk_demo"
    if not demo.exists():
        build_targets(build_dir, ["ntk_demo"])
    if not demo.exists():
        return "skipped", "ntk_demo is not built (build/theory/demos/ntk_demo missing)"
    with tempfile.TemporaryDirectory(prefix="theta-ntk-") as tmp:
        dump = Path(tmp) / "dump"
        dump.mkdir()
        proc = subprocess.run([str(demo), "--quick", "--out", str(Path(tmp) / "out"), "--dump", str(dump)],
                              capture_output=True, text=True, env=thread_env(threads))
        if not (dump / "ntk.npy").exists():
            return "skipped", f"ntk_demo wrote no dump (exit {proc.returncode}): {proc.stderr[-300:]}"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "ntk-check", "--child-threads",
               str(threads), "--child-workloads", str(dump)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads, for_torch=True))
        if out.returncode != 0:
            return "error", out.stderr[-1000:]
        report = json.loads(out.stdout.strip().splitlines()[-1])
    errors = [report[m]["max_rel"] for m in ("contraction", "structured") if "max_rel" in report.get(m, {})]
    verdict = "pass" if len(errors) == 2 and max(errors) <= 1e-10 else "FAIL"
    details = (f"kernel {report['shape']}, {report['params']} parameters; max |K_torch - K_theta| / max |K_theta|: "
               f"contraction {report['contraction'].get('max_rel', report['contraction'])}, "
               f"structured {report['structured'].get('max_rel', report['structured'])} (tolerance 1e-10)")
    if verdict == "FAIL":
        for key in ("sigma_w", "sigma_b"):
            digits = len(re.sub(r"[^0-9]", "", str(report[key])).lstrip("0"))
            if isinstance(report[key], float) and digits == 6:  # iostream's default precision
                details += (f"; model.json stores {key} = {report[key]} with only {digits} significant digits, "
                            "too few for a 1e-10 check (the dump should print doubles with 17 digits)")
    return verdict, details


def format_time(seconds):
    """A time with a unit that keeps 3-4 significant digits."""
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if seconds / scale < 100 else f"{seconds / scale:.0f} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def summarise(samples):
    """(median, spread) of a list of times; spread = (max - min) / median, None when empty."""
    values = [s for s in samples if s is not None]
    if not values:
        return None, None
    med = statistics.median(values)
    return med, (max(values) - min(values)) / med if len(values) > 1 else 0.0


def print_table(rows, markdown, out=sys.stdout):
    """Prints rows of (workload, threads, theta samples, torch samples, note) as a table."""
    header = ["workload", "threads", "theta", "PyTorch", "PyTorch/theta", "runs", "spread theta / torch"]
    lines = []
    for name, threads, theta_s, torch_s, note in rows:
        tm, ts = summarise(theta_s)
        pm, ps = summarise(torch_s)
        ratio = f"{pm / tm:.2f}" if tm and pm else "n/a"
        runs = f"{len([s for s in theta_s if s])}/{len([s for s in torch_s if s])}"
        spread = "/".join("-" if s is None else f"{100 * s:.0f}%" for s in (ts, ps))
        lines.append([name + (f" {note}" if note else ""), str(threads), format_time(tm), format_time(pm), ratio,
                      runs, spread])
    if markdown:
        print("| " + " | ".join(header) + " |", file=out)
        print("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|", file=out)
        for line in lines:
            print("| " + " | ".join(line) + " |", file=out)
        return
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))), file=out)
    for line in lines:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))),
              file=out)


def cpu_model():
    """'model name (family F model M)' from /proc/cpuinfo."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "unknown"
    return f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def parse_args(argv):
    """Command line of the parent and of the child modes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1", help="comma-separated thread counts (default 1), e.g. 1,2")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side (default 3)")
    p.add_argument("--filter", default="", help="regex on theta's benchmark names")
    p.add_argument("--quick", action="store_true", help="tiny min_time and one round: a smoke run")
    p.add_argument("--heavy-rounds", action="store_true",
                   help="run the workloads of many seconds in every round too (by default they run in the "
                        "first round only): a ratio then rests on the medians of several calls per side")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    p.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    p.add_argument("--build-dir", type=Path, default=ROOT / "build", help="theta's Release build directory")
    p.add_argument("--omp-wait-policy", default="PASSIVE",
                   help="OMP_WAIT_POLICY of the PyTorch children (default PASSIVE; '' keeps libgomp's "
                        "spinning default, which starves OpenBLAS's threads when cores are shared)")
    p.add_argument("--lock", default=None,
                   help="file to flock around each measurement (e.g. the build lock), so no build "
                        "overlaps a measurement")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--no-check", action="store_true", help="skip the NTK agreement check")
    p.add_argument("--child", choices=["run", "memory", "info", "ntk-check"], help=argparse.SUPPRESS)
    p.add_argument("--child-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--child-workloads", default="", help=argparse.SUPPRESS)
    p.add_argument("--child-min-time", type=float, default=0.5, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv):
    """Runs the comparison and prints the report."""
    global LOCK_PATH
    args = parse_args(argv)
    if args.child:
        {"run": child_run, "memory": child_memory, "info": child_info, "ntk-check": child_ntk_check}[args.child](args)
        return 0
    LOCK_PATH = args.lock
    if importlib.util.find_spec("torch") is None:
        print("compare_torch: PyTorch is missing; install it with: apt-get install -y python3-torch "
              "(and run this script with /usr/bin/python3)", file=sys.stderr)
        return 1
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    rounds = 1 if args.quick else max(1, args.rounds)
    min_time = 0.01 if args.quick else args.min_time
    bench = args.build_dir / "bench" / "theta_bench"
    if not bench.exists():
        build_targets(args.build_dir, ["theta_bench"])
    theta_names = theta_benchmark_names(bench) if bench.exists() else set()
    if not theta_names:
        print(f"compare_torch: {bench} not found; the theta column stays empty", file=sys.stderr)
    pattern = re.compile(args.filter) if args.filter else None
    selected = [w for w in WORKLOADS if not pattern or pattern.search(w[0])]
    missing = [w[0] for w in selected if w[0] not in theta_names]
    extras = [e for e in EXTRA_ROWS if any(w[0] == e[0] for w in selected)]

    # Context: theta's (from one tiny run of its cheapest benchmark present) and PyTorch's.
    cheap = [n for n in ("BM_Memcpy_F32/16777216", "BM_TinyDeepLinearStep") if n in theta_names]
    context = run_theta(bench, cheap[:1] or sorted(theta_names)[:1], thread_counts[0], 1e-9)[2] if theta_names else {}
    blas_core = context.get("openblas_core")
    TORCH_ENV.update({"OPENBLAS_CORETYPE": blas_core, "OMP_WAIT_POLICY": args.omp_wait_policy})
    TORCH_ENV.update(TORCH_MALLOC_ENV)
    info = json.loads(run_checked([sys.executable, str(Path(__file__).resolve()), "--child", "info",
                                   "--child-threads", str(thread_counts[0])],
                                  env=thread_env(thread_counts[0], for_torch=True)).strip().splitlines()[-1])
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"# theta vs PyTorch, {stamp}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; load average {os.getloadavg()[0]:.2f}")
    print(f"theta: OpenBLAS core {blas_core or '?'}, SIMD {context.get('simd', '?')}; benchmark {bench}")
    print(f"PyTorch {info['torch']} (functorch {info['functorch']}), CPU capability {info['capability']}, "
          f"BLAS_INFO={info['blas_info']}, OpenBLAS core {info['openblas_core']}, libraries {info['libraries']}")
    malloc = {var: os.environ.get(var, value) for var, value in TORCH_MALLOC_ENV.items()}
    print("PyTorch children's malloc: " + " ".join(f"{var}={value}" for var, value in malloc.items()))
    print(f"threads {thread_counts}, {rounds} interleaved round(s), min_time {min_time} s; times are wall-clock "
          "medians per call")
    if missing:
        print(f"not in theta_bench (theta column n/a): {', '.join(missing)}")
    sys.stdout.flush()

    # samples[(threads, theta name)] = ([theta times], [torch times]); extras keyed by torch key.
    samples, extra_samples, pinned, loads = {}, {}, {}, []
    for r in range(rounds):
        for threads in thread_counts:
            loads.append(os.getloadavg()[0])
            todo = [w for w in selected if r == 0 or not w[2] or args.heavy_rounds]
            names = [w[0] for w in todo if w[0] in theta_names]
            print(f"round {r + 1}/{rounds}, {threads} thread(s): theta ({len(names)} benchmarks)", file=sys.stderr)
            times, labels, _ = run_theta(bench, names, threads, min_time)
            for name, label in labels.items():
                # A benchmark that pins itself to one thread (Note [Single-threaded benchmarks] in
                # bench/bench_tensor.cpp) is compared with PyTorch on one thread too.
                if re.search(r"\b1 thread\b", label):
                    pinned[name] = 1
            groups = {}
            for w in todo:
                groups.setdefault(pinned.get(w[0], threads), []).append(w[1])
            for e in extras:
                if r == 0 or not e[2] or args.heavy_rounds:
                    groups.setdefault(threads, []).append(e[1])
            torch_times = {}
            for t, keys in groups.items():
                print(f"round {r + 1}/{rounds}, {threads} thread(s): PyTorch on {t} ({len(keys)} workloads)",
                      file=sys.stderr)
                torch_times.update(run_torch(keys, t, min_time))
            for w in todo:
                entry = samples.setdefault((threads, w[0]), ([], []))
                entry[0].append(times.get(w[0]))
                entry[1].append(torch_times.get(w[1]))
            for e in extras:
                if e[1] in torch_times:
                    extra_samples.setdefault((threads, e[1]), []).append(torch_times[e[1]])

    print(f"load average (1 min) at the start of each measurement: {min(loads):.2f} to {max(loads):.2f} "
          f"on {os.cpu_count()} CPUs")
    for threads in thread_counts:
        rows = []
        for w in selected:
            theta_s, torch_s = samples.get((threads, w[0]), ([], []))
            effective = pinned.get(w[0], threads)
            note = "(1 run)" if w[2] and not args.heavy_rounds else ""
            rows.append((w[0] + (" " + note if note else ""), effective, theta_s, torch_s, ""))
            for e in extras:
                if e[0] == w[0] and (threads, e[1]) in extra_samples:
                    rows.append((e[3], threads, theta_s, extra_samples[(threads, e[1])], ""))
        print(f"\n## {threads} thread(s)" + (" (rows marked 1 in the threads column are pinned to one thread "
                                               "by theta's benchmark)" if threads > 1 and pinned else ""))
        print_table(rows, args.markdown)

    if not args.no_memory:
        mem_names = [n for n in MEMORY_WORKLOADS if any(w[0] == n for w in selected)]
        if mem_names:
            print(f"\n## Peak resident memory (ru_maxrss of a fresh child, {thread_counts[0]} thread(s))")
            rows = measure_memory(bench, theta_names, mem_names, thread_counts[0])
            mib = 1 << 20
            fmt = (lambda v: "n/a" if v is None else f"{v / mib:.0f} MiB")
            header = ["workload", "theta peak", "theta - empty", "PyTorch peak", "PyTorch - import",
                      "n*O*P*8 (per-sample Jacobian)"]
            table = [[r["name"], fmt(r["theta"]), fmt(r["theta"] and r["theta"] - r["theta_base"]), fmt(r["torch"]),
                      fmt(r["torch"] and r["torch"] - r["torch_base"]), fmt(r["jacobian_bytes"])] for r in rows]
            if args.markdown:
                print("| " + " | ".join(header) + " |")
                print("|---|" + "--:|" * (len(header) - 1))
                for t in table:
                    print("| " + " | ".join(t) + " |")
            else:
                widths = [max(len(x[i]) for x in [header] + table) for i in range(len(header))]
                for t in [header] + table:
                    print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(t)))
            print(f"(empty theta_bench process: {fmt(rows[0]['theta_base'])}; python + import torch: "
                  f"{fmt(rows[0]['torch_base'])})")
            for r in rows:
                if ("Structured" in r["name"] or "Tiled" in r["name"]) and r["theta"]:
                    used = r["theta"] - r["theta_base"]
                    print(f"{r['name']}: theta's structured NTK uses {used / r['jacobian_bytes']:.3f} x n*O*P*8 "
                          f"({'far below' if used < 0.25 * r['jacobian_bytes'] else 'NOT far below'} the Jacobian)")

    if not args.no_check and (not pattern or any("Ntk" in w[0] for w in selected)):
        verdict, details = ntk_check(args.build_dir, thread_counts[0])
        print(f"\n## NTK agreement (theta's ntk_demo dump vs PyTorch float64): {verdict}\n{details}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
