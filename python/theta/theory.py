"""theta.theory: empirical and analytic NTKs, Hessian spectra, symmetries, deep linear dynamics.

Also representation similarity (CKA, CCA), loss landscapes (filter-normalised directions, loss
slices and surfaces, trajectory PCA), the lazy-training scaling (:class:`LazyScaled`) and the closed
forms of implicit bias (least-squares paths, the max-margin SVM, :class:`DiagonalNet`).

Models are ``theta.nn.Module`` objects: build one from a PyTorch state_dict with
:func:`mlp_from_state_dict`, from weights with :func:`make_deep_linear_net`, or with ``theta.nn``.
Arrays go in and come out as NumPy arrays; long calls release the GIL.
"""

import re as _re

import numpy as _np

from ._theta import theory as _impl
from ._reexport import reexport as _reexport

__all__ = _reexport(_impl, globals())

_LINEAR_WEIGHT = _re.compile(r"^(.*?)(\d+)\.weight$")


def _as_array(value):
    """A NumPy array from an array, a theta.Tensor or a torch tensor (detached, on the CPU)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return _np.ascontiguousarray(value)


def mlp_from_state_dict(state_dict, widths=None, *, activation="relu", bias=None, parameterization="standard",
                        sigma_w=1.0, sigma_b=0.0, spec=None):
    """An MLP (float64 theta.nn.Module) holding the weights of a PyTorch-style state_dict.

    ``state_dict`` maps names like ``"0.weight"`` [out, in] and ``"0.bias"`` [out] (the Linear
    layers of an ``nn.Sequential(Linear, activation, Linear, ...)``, under one common prefix or none)
    to arrays or torch tensors. ``widths`` defaults to the Linear layers' shapes and ``bias`` to
    whether the dict holds biases. ``parameterization`` "standard" is torch's y = x W^T + b; "ntk"
    scales by sigma_w / sqrt(fan_in) and sigma_b. ``spec`` (a dict as load_mlp_spec returns)
    overrides the keyword arguments. Missing, extra or misshapen tensors raise ValueError.
    """
    weights = [(str(name), _as_array(value)) for name, value in state_dict.items()]
    if spec is not None:
        widths = spec["widths"]
        activation = spec["activation"]
        bias = spec.get("bias", True)
        parameterization = spec["parameterisation"]  # model.json spells it so
        sigma_w = spec["sigma_w"]
        sigma_b = spec["sigma_b"]
    if widths is None:
        layers = sorted((int(m.group(2)), value) for name, value in weights
                        if (m := _LINEAR_WEIGHT.match(name)) is not None)
        if not layers or any(value.ndim != 2 for _, value in layers):
            raise ValueError("mlp_from_state_dict: no 2-D '<k>.weight' tensors to infer widths from; pass widths=")
        widths = [layers[0][1].shape[1]] + [value.shape[0] for _, value in layers]
    if bias is None:
        bias = any(name.endswith(".bias") for name, _ in weights)
    return _impl._mlp_from_state_dict(weights, list(widths), activation, bool(bias), parameterization,
                                      float(sigma_w), float(sigma_b))


__all__.append("mlp_from_state_dict")
