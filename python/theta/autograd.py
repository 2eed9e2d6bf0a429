"""theta.autograd (see the package docstring)."""

from ._theta import autograd as _impl
from ._reexport import reexport

__all__ = reexport(_impl, globals())
