"""Python and the C++ tool compute the same bits: theta_ntk (build/theory/tools) against
theta.theory on the same model.json, weights and inputs."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import theta
import theta.theory as th

# The build tree this theta comes from (<build>/python/theta/__init__.py).
BUILD = Path(theta.__file__).resolve().parents[2]
TOOL = BUILD / "theory" / "tools" / "theta_ntk"


@pytest.fixture
def problem(tmp_path, rng):
    if not TOOL.exists():
        pytest.skip(f"{TOOL} is not built")
    spec = {"widths": [5, 16, 16, 3], "activation": "tanh", "parameterisation": "ntk", "sigma_w": 1.3,
            "sigma_b": 0.2, "bias": True}
    weights = {}
    for i, (a, b) in enumerate(zip(spec["widths"][:-1], spec["widths"][1:])):
        weights[f"{2 * i}.weight"] = rng.normal(size=(b, a))
        weights[f"{2 * i}.bias"] = rng.normal(size=b)
    x1, x2 = rng.normal(size=(23, 5)), rng.normal(size=(9, 5))
    (tmp_path / "model.json").write_text(json.dumps(spec))
    np.savez(tmp_path / "weights.npz", **weights)
    np.save(tmp_path / "x1.npy", x1)
    np.save(tmp_path / "x2.npy", x2)
    model = th.mlp_from_state_dict(weights, spec=th.load_mlp_spec(str(tmp_path / "model.json")))
    return tmp_path, model, x1, x2


def run_tool(folder, *args, model="model.json"):
    out = folder / "K.npy"
    subprocess.run([str(TOOL), "--model", str(folder / model), "--weights", str(folder / "weights.npz"),
                    "--x", str(folder / "x1.npy"), "--out", str(out), "--quiet", *args], check=True,
                   env=dict(os.environ, THETA_NUM_THREADS="1"))  # same OpenBLAS core as this process
    return np.load(out)


@pytest.mark.parametrize("form", ["trace", "full"])
def test_empirical_kernel_is_bitwise_the_tools(problem, form):
    folder, model, x1, x2 = problem
    want = run_tool(folder, "--x2", str(folder / "x2.npy"), "--form", form, "--tile", "8")
    got = th.ntk_tiled(model, x1, x2, tile=8, form=form, threads=1)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # The whole-batch kernel is the same computation in one block.
    np.testing.assert_allclose(th.ntk(model, x1, x2, form=form), want, rtol=1e-13, atol=1e-13)


def test_one_output_and_analytic_kernels_are_bitwise_the_tools(problem):
    folder, model, x1, _ = problem
    np.testing.assert_array_equal(th.ntk_tiled(model, x1, tile=8, form="output", output=2, threads=1),
                                  run_tool(folder, "--form", "output", "--output", "2", "--tile", "8"))
    # The infinite-width kernels (ReLU; they need no weights).
    spec = json.loads((folder / "model.json").read_text())
    (folder / "relu.json").write_text(json.dumps(dict(spec, activation="relu")))
    analytic = th.analytic_ntk(x1, layers=3, activation="relu", sigma_w=1.3, sigma_b=0.2)
    for kernel in ("ntk", "nngp"):
        np.testing.assert_array_equal(analytic[kernel], run_tool(folder, "--kernel", kernel, model="relu.json"))
