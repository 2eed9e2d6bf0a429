#!/usr/bin/python3
"""Writes a theta_ntk problem on the digits data set into DIR: x.npy (1797 x 64 pixels / 16),
model.json (relu MLP 64-512-512-10, standard parameterisation) and weights.npz (PyTorch's
nn.Linear initialisation, seed 0, under PyTorch's state_dict names).

    /usr/bin/python3 scripts/digits_ntk_inputs.py DIR
"""
import gzip
import json
import pathlib
import sys

import numpy as np


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    data = pathlib.Path(__file__).resolve().parent.parent / "data" / "digits.csv.gz"
    with gzip.open(data, "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    np.save(out / "x.npy", rows[:, :64] / 16.0)
    widths = [64, 512, 512, 10]
    model = {"widths": widths, "activation": "relu", "bias": True, "parameterisation": "standard",
             "sigma_w": 1.0, "sigma_b": 1.0}
    (out / "model.json").write_text(json.dumps(model) + "\n")
    rng = np.random.default_rng(0)
    weights = {}
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1 / np.sqrt(fan_in)
        weights[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in))
        weights[f"{2 * i}.bias"] = rng.uniform(-bound, bound, fan_out)
    np.savez(out / "weights.npz", **weights)


if __name__ == "__main__":
    main()
