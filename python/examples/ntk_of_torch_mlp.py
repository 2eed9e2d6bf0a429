#!/usr/bin/python3
"""The empirical NTK of an MLP trained in PyTorch, computed by theta and by PyTorch.

Trains a 64-256-256-10 ReLU MLP on the handwritten digits with PyTorch (float64, a few epochs of
Adam), hands its state_dict to theta, and computes the trace NTK Theta(x_i, x_j) = sum_o
<df_o(x_i)/dp, df_o(x_j)/dp> of n test digits both ways: theta's structured kernel (two gemms per
layer, no Jacobian) and PyTorch's per-sample Jacobians (functorch vmap(jacrev)) contracted as
J J^T. Prints the largest relative difference (float64 round-off, ~1e-14) and both times.

Usage: PYTHONPATH=build/python /usr/bin/python3 python/examples/ntk_of_torch_mlp.py [--n 256]
Needs Debian's python3-torch.
"""

import argparse
import time

import numpy as np
import torch

import theta as th


def torch_trace_ntk(net, x):
    """sum_o J_o J_o^T from PyTorch's per-sample Jacobians: functorch's vmap(jacrev) over the
    samples (PyTorch's fastest way to the empirical NTK), then the contraction."""
    from functorch import jacrev, make_functional, vmap

    fnet, params = make_functional(net)
    jac = vmap(jacrev(lambda ps, xi: fnet(ps, xi[None])[0]), in_dims=(None, 0))(params, x)
    n = x.shape[0]
    return sum(torch.einsum("iop,jop->ij", j.reshape(n, j.shape[1], -1), j.reshape(n, j.shape[1], -1)) for j in jac)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="test digits in the kernel (default 256)")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    x, y = th.nn.load_digits()
    x = x / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:1400 + args.n]

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for epoch in range(args.epochs):
        for batch in torch.randperm(len(train)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            opt.step()
        with torch.no_grad():
            accuracy = (net(torch.from_numpy(x[test])).argmax(1).numpy() == y[test]).mean()
        print(f"torch epoch {epoch + 1}: test accuracy {accuracy:.3f}")

    model = th.theory.mlp_from_state_dict(net.state_dict())  # PyTorch names and [out, in] layouts
    xs = x[test]
    np.testing.assert_allclose(model(xs), net(torch.from_numpy(xs)).detach().numpy(), rtol=1e-12, atol=1e-12)

    start = time.perf_counter()
    k_theta = th.theory.ntk(model, xs, form="trace")
    t_theta = time.perf_counter() - start
    start = time.perf_counter()
    k_torch = torch_trace_ntk(net, torch.from_numpy(xs)).detach().numpy()
    t_torch = time.perf_counter() - start

    rel = np.abs(k_theta - k_torch).max() / np.abs(k_torch).max()
    print(f"trace NTK of {args.n} test digits, {sum(p.numel() for p in net.parameters())} parameters")
    print(f"  theta (structured): {t_theta * 1e3:.1f} ms")
    print(f"  PyTorch (functorch vmap(jacrev), J J^T): {t_torch * 1e3:.1f} ms ({t_torch / t_theta:.0f}x theta)")
    print(f"  max |theta - torch| / max |torch| = {rel:.2e}")
    eigenvalues = np.linalg.eigvalsh(k_theta)
    print(f"  kernel spectrum: largest {eigenvalues[-1]:.4g}, condition number {eigenvalues[-1] / eigenvalues[0]:.3g}")
    return 0 if rel < 1e-10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
