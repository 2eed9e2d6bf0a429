"""theta.theory (see the package docstring)."""

from ._theta import theory as _impl
from ._reexport import reexport

__all__ = reexport(_impl, globals())
