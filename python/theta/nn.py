"""theta.nn (see the package docstring): layers and models, state dicts, losses, optimisers,
training, checkpoints and the shipped data sets."""

import os
from pathlib import Path

from ._theta import nn as _impl
from ._reexport import reexport

__all__ = reexport(_impl, globals())


def _installed_data_file(name):
    """The shipped data file `name` next to an installed package, or None.

    An installed theta puts the package in <prefix>/lib/.../theta and the data sets in
    <prefix>/share/theta. The C++ library looks in the prefix it was configured with; a tree
    installed elsewhere or moved (cmake --install --prefix, a copied directory) still has the data
    beside the package, so look there first, unless THETA_DATA_DIR chooses (Note [Data directory]
    in nn/data_dir.cpp).
    """
    if os.environ.get("THETA_DATA_DIR"):
        return None
    package = Path(__file__).resolve().parent
    for ancestor in list(package.parents)[:5]:
        candidate = ancestor / "share" / "theta" / name
        if candidate.is_file():
            return str(candidate)
    return None


def load_digits(path=None):
    """The UCI optical digits as (x [1797, 64] float64, y [1797] int64), from `path` or the
    shipped digits.csv.gz ($THETA_DATA_DIR, else beside an installed package, else the data
    directory theta was configured with)."""
    if path is None:
        path = _installed_data_file("digits.csv.gz")
    return _impl.load_digits(path)


def load_iris(path=None):
    """Fisher's iris as (x [150, 4] float64, y [150] int64), from `path` or the shipped iris.csv
    (found as load_digits finds its file)."""
    if path is None:
        path = _installed_data_file("iris.csv")
    return _impl.load_iris(path)
