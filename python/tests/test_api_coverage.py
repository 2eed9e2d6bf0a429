"""Every public name of the theta package is exercised somewhere in this test suite.

A static check: each public function, class and method of theta, theta.autograd, theta.nn and
theta.theory must be named (called, constructed or accessed) in at least one other test file.
A new binding without a test fails here.
"""

import inspect
import re
from pathlib import Path

import theta

TESTS = Path(__file__).resolve().parent
# Inherited from object or pybind11 itself, not theta's API.
IGNORED_MEMBERS = {"__init__", "__repr__", "__len__", "__call__", "__getitem__", "__iter__", "__float__", "__array__"}


def suite_sources():
    return "\n".join(p.read_text() for p in TESTS.glob("*.py") if p.name != Path(__file__).name)


def public_names():
    """(qualified name, bare name) of every public callable and class member of the package."""
    out = []
    for area in (theta, theta.autograd, theta.nn, theta.theory):
        prefix = area.__name__
        for name in getattr(area, "__all__", dir(area)):
            if name.startswith("_") or name in ("autograd", "nn", "theory"):
                continue
            value = getattr(area, name)
            if inspect.ismodule(value):
                for inner in dir(value):
                    if not inner.startswith("_") and callable(getattr(value, inner)):
                        out.append((f"{prefix}.{name}.{inner}", inner))
                continue
            if not callable(value):
                continue
            out.append((f"{prefix}.{name}", name))
            if inspect.isclass(value):
                for member, _ in inspect.getmembers(value):
                    if member.startswith("_") or member in IGNORED_MEMBERS:
                        continue
                    if any(member in vars(base) for base in value.__mro__[1:] if base is not object):
                        continue  # checked on the class that defines it
                    out.append((f"{prefix}.{name}.{member}", member))
    return out


def test_every_public_name_is_exercised():
    sources = suite_sources()
    missing = sorted({qualified for qualified, bare in public_names()
                      if not re.search(r"(?<![A-Za-z0-9_])" + re.escape(bare) + r"(?![A-Za-z0-9_])", sources)})
    assert not missing, f"public names no test mentions: {missing}"
