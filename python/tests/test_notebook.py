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
