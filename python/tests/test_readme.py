"""Every Python example of README.md runs as written."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import theta

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    """(first line number, code) of every ```python block of the README."""
    blocks, code, start = [], None, 0
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if code is None and line.strip() == "```python":
            code, start = [], number + 1
        elif code is not None and line.strip() == "```":
            blocks.append((start, "\n".join(code) + "\n"))
            code = None
        elif code is not None:
            code.append(line)
    return blocks


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("line, code", python_blocks(), ids=[f"README.md:{line}" for line, _ in python_blocks()])
def test_readme_example_runs(line, code, tmp_path):
    if "import torch" in code and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch (Debian: python3-torch)")
    script = tmp_path / f"readme_line{line}.py"
    script.write_text(code)
    # The theta this suite imports (the build tree's), whatever the working directory.
    env = dict(os.environ, PYTHONPATH=str(Path(theta.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"README.md line {line}:\n{result.stderr[-3000:]}"
