"""python/examples/reproduce_paper.ipynb runs top to bottom without an error and prints its results.

Executed with nbclient in a fresh kernel whose PYTHONPATH finds this checkout's package (`make
setup` installs nbclient, nbformat and ipykernel; a missing one fails here, it is never skipped).
Its run time is not asserted (a wall-clock bound flakes on a loaded machine); each cell has nbclient's timeout.
"""

from __future__ import annotations

from notebook_runner import run_notebook


def test_notebook_executes(monkeypatch):
    text = run_notebook("reproduce_paper.ipynb", monkeypatch)
    assert "residual of Thm 1" in text
    assert "UnstableError" in text
    assert "γ* = -0.1698" in text
    # §7: the exact learning curves against Monte-Carlo SGD on the same schedules.
    z = [float(line.split("max |z| = ")[1].split()[0]) for line in text.splitlines() if "simulation max |z|" in line]
    assert len(z) == 2 and max(z) < 4.5, z
    # §8: epoch shuffling, predicted against simulated (within 5 %, docs/theory.md §4.2), where the
    # fresh-sampling formulas are far off.
    rel = {line.split(":")[0].strip(): float(line.split("(")[1].split("%")[0]) for line in text.splitlines()
           if "vs simulation)" in line}
    assert abs(rel["epoch shuffling"]) < 5 and rel["without replacement"] > 50, rel
