"""theta.nn (see the package docstring): layers and models, state dicts, losses, optimisers,
training, checkpoints and the shipped data sets.

    import numpy as np
    from theta import nn

    x, y = nn.load_digits()                              # (1797, 64) float64, (1797,) int64
    x = nn.Standardizer.fit(x).apply(x)
    net = nn.mlp([64, 128, 10], activation="relu", seed=0)
    opt = nn.SGD(net, lr=0.05, momentum=0.9)
    log = nn.fit(net, opt, x, y, loss="cross_entropy", epochs=5, batch_size=64)
    print(nn.evaluate(net, x, y))                        # {"loss": ..., "accuracy": ...}

    net.load_state_dict(torch_model.state_dict())        # a torch.nn.Sequential MLP, float64
    loss = nn.train_step(net, opt, xb, yb, loss="mse")   # one step, one call
"""

import os as _os
from pathlib import Path as _Path

from ._theta import nn as _impl
from ._reexport import reexport as _reexport

__all__ = _reexport(_impl, globals())


# Note [Data sets from Python]
# The loaders find the shipped data sets in this order:
#   1. a path given to the loader: used as given;
#   2. $THETA_DATA_DIR when set and non-empty: used as given (the C++ library reads it);
#   3. <prefix>/share/theta beside an installed package (<prefix>/lib/.../theta), so a tree
#      installed under another prefix than the configured one, or moved, still finds its data;
#   4. in the build tree, the source tree's data/ (_build_tree.py, written there by CMake and
#      never installed);
#   5. the directory theta was configured with (Note [Data directory] in nn/data_dir.cpp), whose
#      error names where it looked and how to override it.
def _python_data_dir(name):
    """The folder holding the shipped file `name` by steps 3 and 4 above, or None."""
    if _os.environ.get("THETA_DATA_DIR"):
        return None
    package = _Path(__file__).resolve().parent
    for ancestor in list(package.parents)[:5]:
        candidate = ancestor / "share" / "theta"
        if (candidate / name).is_file():
            return str(candidate)
    try:
        from . import _build_tree
    except ImportError:
        return None
    if (_Path(_build_tree.DATA_DIR) / name).is_file():
        return _build_tree.DATA_DIR
    return None


def default_data_dir():
    """The folder the loaders read (Note [Data sets from Python] in theta/nn.py): $THETA_DATA_DIR
    when set, else <prefix>/share/theta beside an installed package, else the source tree's data/
    in a build tree, else the one theta was configured with."""
    return _python_data_dir("digits.csv.gz") or _impl.default_data_dir()


def data_file(name):
    """The path of the shipped data file `name` ("digits.csv.gz", "iris.csv"); ValueError naming
    where it looked when it is missing."""
    folder = _python_data_dir(name)
    return str(_Path(folder) / name) if folder else _impl.data_file(name)


def load_digits(path=None):
    """The UCI optical digits as (x [1797, 64] float64, y [1797] int64), from `path` (gzip or plain
    CSV) or the shipped digits.csv.gz (found as data_file finds it)."""
    if path is None:
        folder = _python_data_dir("digits.csv.gz")
        path = str(_Path(folder) / "digits.csv.gz") if folder else None
    return _impl.load_digits(path)


def load_iris(path=None):
    """Fisher's iris as (x [150, 4] float64, y [150] int64), from `path` (scikit-learn's CSV
    layout) or the shipped iris.csv (found as data_file finds it)."""
    if path is None:
        folder = _python_data_dir("iris.csv")
        path = str(_Path(folder) / "iris.csv") if folder else None
    return _impl.load_iris(path)
