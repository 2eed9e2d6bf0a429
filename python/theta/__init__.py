"""theta from Python: float64 tensors, autodiff and deep-learning theory tools.

The heavy lifting is theta's C++ library (the extension module ``theta._theta``); this package
re-exports it in three areas, each also importable on its own:

- ``theta.autograd``: Vars, grad, vjp, jvp, hvp, jacobian, hessian, forward mode (DualLevel, make_dual, tangent);
- ``theta.nn``: layers, models, losses, optimisers, data sets, checkpoints, training;
- ``theta.theory``: empirical and analytic NTKs, Hessian spectra, symmetries, deep linear dynamics.

Arrays go in and come out as NumPy arrays. A C-contiguous, aligned, writeable float64, float32 or
int64 array is used in place (no copy); results are NumPy views of theta's memory. Other dtypes
raise TypeError: theta never casts silently. Long calls release the GIL and stop at Ctrl-C.
"""

from ._theta import (Tensor, blas_core, get_num_threads, runtime_summary, set_num_threads,
                     shares_memory)
from . import autograd, nn, theory

__all__ = ["Tensor", "autograd", "nn", "theory", "runtime_summary", "blas_core", "set_num_threads",
           "get_num_threads", "shares_memory"]
