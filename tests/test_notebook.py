"""docs/tutorial.ipynb runs end to end, and is committed without outputs, so it cannot rot.

The notebook runs as a user runs it, in a Jupyter kernel (nbclient; the ``python3`` kernel
of ipykernel, started with this interpreter), with a temporary folder as its working
directory, so it writes nothing in the repository. Any cell error fails the test, and so
does a cell that writes to stderr (a warning) or a figure shown as text only (matplotlib's
inline backend not active). A last cell, added here and not saved, checks that the kernel
imported anomalia from where this process did (``PYTHONPATH`` is passed on to the kernel),
so a worktree's sources are what is tested. The committed file must carry no outputs and no
execution counts: the notebook's pictures are made by running it, never stored in git.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

import anomalia

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"

nbformat = pytest.importorskip(
    "nbformat", reason="nbformat and nbclient run the notebook: pip install -e '.[dev]'"
)
nbclient = pytest.importorskip(
    "nbclient", reason="nbclient runs the notebook in a kernel: pip install -e '.[dev]'"
)


def read() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_committed_without_outputs() -> None:
    nb = read()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) > 10
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, (
        f"cells {dirty} of {NOTEBOOK.name} keep outputs or execution counts: clear them "
        "before committing (Jupyter: Edit > Clear outputs of all cells)"
    )
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert not timed, f"cells {timed} keep execution timestamps in their metadata"


def test_runs_end_to_end(tmp_path, monkeypatch) -> None:
    assert importlib.util.find_spec("ipykernel"), "the python3 kernel needs ipykernel (dev extra)"
    # the kernel imports anomalia from where this process did (a worktree's src/, say)
    here = str(Path(anomalia.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.getenv("PYTHONPATH")])))
    nb = read()
    check = "import json, os, sys\nimport anomalia\n"
    check += "print(json.dumps([anomalia.__file__, sys.executable, os.getcwd()]))"
    nb.cells.append(nbformat.v4.new_code_cell(check))

    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    where = json.loads(nb.cells[-1].outputs[0]["text"])
    assert Path(where[0]).resolve() == Path(anomalia.__file__).resolve(), where
    assert Path(where[1]).resolve() == Path(sys.executable).resolve(), where
    assert Path(where[2]).resolve() == tmp_path.resolve(), where

    pictures = 0
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"cell {i} wrote to stderr:\n{out.text}"
            )
            data = out.get("data", {})
            pictures += "image/png" in data
            shown_as_text = str(data.get("text/plain", "")).startswith("<Figure")
            assert "image/png" in data or not shown_as_text, f"cell {i}: a figure without PNG"
    assert pictures >= 15, f"only {pictures} figures drawn"
    assert not list(tmp_path.iterdir()), "the notebook wrote files"
