#!/usr/bin/python3
"""The loss Hessian's spectrum while an MLP learns the handwritten digits, with a figure.

Trains a 64-64-10 tanh MLP on 1400 digits with SGD (theta.nn.fit, in C++ with the GIL released)
and after every epoch measures, on a fixed batch of 512 training digits, the cross-entropy loss
Hessian's top eigenvalues (Lanczos on exact Hessian-vector products) and its trace (Hutchinson,
with its standard error), and the test accuracy. Curvature rises in the first epoch, while the
network leaves its initial near-uniform predictions, then every measured eigenvalue and the trace
fall as the cross-entropy loss falls and the softmax saturates; the trace per parameter stays far
below lambda_max (most directions are nearly flat). Writes hessian_during_training.png and .csv
to --out.

Usage: PYTHONPATH=build/python /usr/bin/python3 python/examples/hessian_during_training.py
       [--epochs 15] [--out out/python]
"""

import argparse
import csv
from pathlib import Path

import numpy as np

import theta as th


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--top", type=int, default=12, help="top eigenvalues tracked (default 12)")
    parser.add_argument("--out", default="out/python", help="folder for the figure and the CSV")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    x, y = th.nn.load_digits()
    x = th.nn.Standardizer.fit(x).apply(x)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    probe = train[:512]  # the batch the Hessian is measured on

    net = th.nn.mlp([64, 64, 10], activation="tanh", seed=0)
    opt = th.nn.SGD(net, lr=0.05, momentum=0.9)
    rows = []

    def measure(epoch):
        net.eval()  # (no BatchNorm here; eval mode keeps any such layer's statistics fixed)
        top = th.theory.hessian_eigs(net, x[probe], y[probe], k=args.top, loss="cross_entropy", seed=epoch)
        trace = th.theory.hutchinson_trace(net, x[probe], y[probe], probes=50, loss="cross_entropy", seed=epoch)
        accuracy = th.nn.evaluate(net, x[test], y[test], loss="cross_entropy")["accuracy"]
        net.train()
        rows.append([epoch, accuracy, trace["mean"], trace["std_error"], *top["eigenvalues"]])
        print(f"epoch {epoch:2d}: test accuracy {accuracy:.3f}, lambda_max {top['eigenvalues'][0]:.4g}, "
              f"trace {trace['mean']:.4g} +- {trace['std_error']:.2g} (P = {net.parameter_count})", flush=True)

    measure(0)
    th.nn.fit(net, opt, x[train], y[train], loss="cross_entropy", epochs=args.epochs, batch_size=64, seed=0,
              progress=False, on_epoch=lambda log: measure(log["epoch"] + 1))

    table = np.array(rows)
    with open(out / "hessian_during_training.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "test_accuracy", "trace", "trace_std_error"] +
                        [f"lambda_{i + 1}" for i in range(args.top)])
        writer.writerows(rows)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = table[:, 0]
    for i in range(args.top):
        left.plot(epochs, table[:, 4 + i], color=plt.cm.viridis(i / args.top), lw=1.5 if i < 10 else 0.8)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("eigenvalue")
    left.set_title(f"top {args.top} Hessian eigenvalues (Lanczos)")
    right.errorbar(epochs, table[:, 2], yerr=table[:, 3], marker="o", ms=3, capsize=2)
    right.set_xlabel("epoch")
    right.set_ylabel("tr H (Hutchinson, 50 probes)")
    right.set_title("Hessian trace; test accuracy on the right axis")
    twin = right.twinx()
    twin.plot(epochs, table[:, 1], color="tab:red", ls="--")
    twin.set_ylabel("test accuracy", color="tab:red")
    fig.suptitle("64-64-10 tanh MLP on digits, cross-entropy, SGD (momentum 0.9)")
    fig.tight_layout()
    fig.savefig(out / "hessian_during_training.png", dpi=120)
    print(f"wrote {out / 'hessian_during_training.png'} and {out / 'hessian_during_training.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
