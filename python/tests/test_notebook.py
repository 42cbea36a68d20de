"""python/examples/reproduce_paper.ipynb runs top to bottom without an error and prints its results.

Executed with nbclient in a fresh kernel whose PYTHONPATH finds this checkout's package (`make
setup` installs nbclient, nbformat and ipykernel; a missing one fails here, it is never skipped).
Its run time is not asserted (a wall-clock bound flakes on a loaded machine); each cell has nbclient's timeout.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel nbclient starts)
import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "reproduce_paper.ipynb"


def test_notebook_executes(monkeypatch):
    python_dir = str(NOTEBOOK.parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [python_dir, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # run from a clean state: the stored outputs are for readers
        if cell.cell_type == "code":
            cell.outputs = []
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "residual of Thm 1" in text
    assert "UnstableError" in text
    assert "γ* = -0.1698" in text
