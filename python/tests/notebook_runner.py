"""Executes a notebook of python/examples in a fresh kernel, the way a reader would run it."""

from __future__ import annotations

import os
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel nbclient starts)
import nbclient
import nbformat

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_notebook(name: str, monkeypatch) -> str:
    """Runs python/examples/``name`` top to bottom from a clean state (the stored outputs are for
    readers) with this checkout's package on PYTHONPATH, and returns the text it printed. A failing
    cell raises nbclient's CellExecutionError naming it. Its run time is not asserted (a wall-clock
    bound flakes on a loaded machine); each cell has nbclient's timeout."""
    notebook = EXAMPLES / name
    python_dir = str(notebook.parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [python_dir, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
