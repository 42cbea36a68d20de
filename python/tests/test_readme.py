"""The two real-network examples at the top of README.md run as written, each in a fresh
interpreter (the PyTorch one changes torch's default dtype), and print their summary: the
top eigenvalues, the excess loss, the critical learning rates, the relaxation and the drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from readme_examples import python_blocks, section

ROOT = Path(__file__).resolve().parents[2]


def readme_examples() -> list[str]:
    return python_blocks("## For a real network")


def test_the_readme_has_a_jax_and_a_pytorch_example():
    blocks = readme_examples()
    assert len(blocks) == 2 and "sgdnoise.jax" in blocks[0] and "sgdnoise.torch" in blocks[1]


@pytest.mark.parametrize("index", [0, 1], ids=["jax", "pytorch"])
def test_readme_example_runs(index):
    code = readme_examples()[index]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                                    os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for expected in ("SGD at a minimum", "excess training loss", "critical learning rate, Thm 5 noise",
                     "Relaxation:", "Mean drift"):
        assert expected in out.stdout, out.stdout


def test_readme_learning_curve_example_runs_and_agrees_with_the_simulation():
    code = python_blocks("### Learning curves under schedules")[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                                    os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout.strip().splitlines()
    text = section("### Learning curves under schedules")
    assert len(printed) == 2 and all(line in text for line in printed), out.stdout  # the README shows its output
    z = [float(v) for line in printed for v in line.split("z = [")[1].rstrip("]").split()]
    assert max(abs(v) for v in z) < 4.5, z
