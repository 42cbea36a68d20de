"""The two real-network examples at the top of README.md run as written, each in a fresh
interpreter (the PyTorch one changes torch's default dtype), and print their summary: the
top eigenvalues, the excess loss, the critical learning rates, the relaxation and the drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_readme_learning_curve_example_runs_and_agrees_with_the_simulation(tmp_path):
    blocks = python_blocks("### Learning curves under schedules")
    assert len(blocks) == 2 and "plot.learning_curve" in blocks[1]
    code = blocks[0] + "\n" + blocks[1]  # the computation, then its plot
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                                    os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "learning_curve.png").stat().st_size > 10_000  # the plot of theory and simulation
    printed = out.stdout.strip().splitlines()
    text = section("### Learning curves under schedules")
    assert len(printed) == 2 and all(line in text for line in printed), out.stdout  # the README shows its output
    z = [float(v) for line in printed for v in line.split("z = [")[1].rstrip("]").split()]
    assert max(abs(v) for v in z) < 4.5, z


def _run_script(tmp_path: Path, code: str) -> str:
    """Run a README block as a script file (both examples start worker processes by spawning, which
    imports the script's functions by name) and return what it printed."""
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                                    os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_readme_scaling_out_examples():
    blocks = python_blocks("### Scaling out")
    assert len(blocks) == 2 and "sgdnoise.dask" in blocks[0] and "all_reduce_noise" in blocks[1]


def test_readme_dask_example_runs_and_its_sketch_interval_holds(tmp_path):
    lines = _run_script(tmp_path, python_blocks("### Scaling out")[0]).strip().splitlines()
    assert len(lines) == 4, lines
    count, trace_64, trace_1024 = lines[0].split()
    assert int(count) == 100_000
    # The rows' variances are scales², so Tr C ≈ Σ scales² / S (with replacement), with the
    # without-replacement factor (N - S)/(S(N - 1)) at S = 1024; their mean is 0.05 in every entry.
    variance = float(np.sum((1.0 / (1.0 + np.arange(200)) ** 1.5) ** 2))
    assert abs(float(trace_64) / (variance / 64) - 1) < 0.02
    assert abs(float(trace_1024) / (variance * (100_000 - 1024) / (1024 * 99_999)) - 1) < 0.02
    assert abs(float(lines[1]) / (variance / (200 * 0.05 ** 2)) - 1) < 0.05  # B_simple = Tr Σ₁ / |G|², G ≈ 0.05
    values = np.array(lines[2].split("]")[0].strip("[ ").split(), dtype=float)
    bound = float(lines[2].split("]")[1])
    exact = np.array(lines[3].strip("[ ]").split(), dtype=float)
    rounding = 1e-6 * exact[0]  # the printed digits
    assert np.all(values <= exact + rounding) and np.all(exact <= values + bound + rounding), (values, exact, bound)


def test_readme_torch_distributed_example_runs_and_both_ranks_agree(tmp_path):
    import sgdnoise
    words = _run_script(tmp_path, python_blocks("### Scaling out")[1]).split()
    assert words[:4] == ["2", "ranks", "agree:", "True"]  # both ranks hold the same count and trace
    rows = np.concatenate([np.random.default_rng(rank).normal(size=(20_000, 50)) for rank in (0, 1)])
    assert int(words[4]) == 40_000
    np.testing.assert_allclose(float(words[5]), sgdnoise.noise_covariance(rows, 32, kind="trace"), rtol=1e-12)
