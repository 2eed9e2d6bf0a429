"""theta.autograd: Vars, reverse-mode autodiff and function transforms.

``Var(value, requires_grad=False)`` holds an array and records the ops applied to it; ``grad`` and
``Var.backward`` differentiate, ``vjp``, ``jvp``, ``hvp``, ``vhp``, ``jacobian``, ``hessian`` and
``HessianVectorOperator`` transform Python functions of Vars (the function runs in Python; its
exceptions propagate). Arrays go in, arrays (or Vars, for ``grad``) come out.

The grad mode is per thread; use the context managers below rather than ``set_grad_mode``.
"""

import functools as _functools

from ._theta import autograd as _impl
from ._reexport import reexport as _reexport

__all__ = _reexport(_impl, globals())


class set_grad_enabled:
    """Turns recording on (True) or off (False) inside a ``with`` block or a decorated function;
    the previous mode is restored on exit, exceptions included."""

    def __init__(self, enabled):
        self._enabled = bool(enabled)
        self._previous = []

    def __enter__(self):
        self._previous.append(_impl.grad_mode_enabled())
        _impl.set_grad_mode(self._enabled)
        return self

    def __exit__(self, *exc):
        _impl.set_grad_mode(self._previous.pop())
        return False

    def __call__(self, function):
        @_functools.wraps(function)
        def wrapper(*args, **kwargs):
            with type(self)(self._enabled):
                return function(*args, **kwargs)

        return wrapper


class no_grad(set_grad_enabled):
    """``with no_grad():`` ops record nothing (results are constants); also a decorator."""

    def __init__(self):
        super().__init__(False)

    def __call__(self, function):
        @_functools.wraps(function)
        def wrapper(*args, **kwargs):
            with no_grad():
                return function(*args, **kwargs)

        return wrapper


class enable_grad(set_grad_enabled):
    """``with enable_grad():`` ops record again (inside a no_grad block); also a decorator."""

    def __init__(self):
        super().__init__(True)

    def __call__(self, function):
        @_functools.wraps(function)
        def wrapper(*args, **kwargs):
            with enable_grad():
                return function(*args, **kwargs)

        return wrapper


class detect_anomaly:
    """``with detect_anomaly():`` every op and gradient is checked for NaN/Inf, which raises
    RuntimeError naming the op. Anomaly mode is process-wide; the previous setting is restored."""

    def __init__(self, enabled=True):
        self._enabled = bool(enabled)
        self._previous = []

    def __enter__(self):
        self._previous.append(_impl.anomaly_mode_enabled())
        _impl.set_anomaly_mode(self._enabled)
        return self

    def __exit__(self, *exc):
        _impl.set_anomaly_mode(self._previous.pop())
        return False


__all__ += ["set_grad_enabled", "no_grad", "enable_grad", "detect_anomaly"]
