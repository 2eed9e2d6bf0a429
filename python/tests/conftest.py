"""pytest set-up: the theta package comes from the build tree (PYTHONPATH=build/python)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed, so every run sees the same inputs."""
    return np.random.default_rng(12345)
