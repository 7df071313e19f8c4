"""The API reference (``make docs``): every public name documented, the site built strictly.

A public module is every module of anomalia with no ``_`` part, but ``anomalia.cli`` (its
public face is the command line: docs/cli.md is generated from the Typer app) and
``anomalia.__main__``. Its public names are its ``__all__``, or else the names not starting
with ``_`` that it defines itself (classes, functions, constants assigned in it, not imports).
Of a public class, the public methods and properties it has from anomalia (its own and its
anomalia bases', private bases included) count as well.

Each must have a docstring (a constant: ``#:`` comment lines right above it, as
docs/griffe_sphinx.py reads them, or a string right below) and be reachable from a
``::: identifier`` block of docs/api/*.md: a module's block covers its members (all of them,
none with ``members: false``, those listed with ``members: [a, b]``); a re-exported name
counts under any of its public paths or where it is defined.
Then the site is built as ``make docs`` builds it, with ``--strict`` (a broken
cross-reference, a griffe docstring warning, a broken link or anchor fails), and every public
name is checked in the site's inventory (objects.inv: what the pages actually show).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import anomalia

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(anomalia.__file__).resolve().parent
API_PAGES = ROOT / "docs" / "api"
#: Modules whose public face is not the Python API.
NOT_API = ("anomalia.cli", "anomalia.__main__")


# -- the public API ------------------------------------------------------------------------
def _private(path: str) -> bool:
    return any(p.startswith("_") and not p.endswith("__") for p in path.split(".")[1:])


@functools.cache
def all_modules() -> dict[str, ModuleType]:
    """Every module of anomalia, private ones included, imported."""
    names = ["anomalia"] + [
        info.name for info in pkgutil.walk_packages(anomalia.__path__, "anomalia.")
    ]
    return {name: importlib.import_module(name) for name in names if name != "anomalia.__main__"}


def public_modules() -> list[str]:
    return [
        name
        for name in all_modules()
        if not _private(name) and not any(name == n or name.startswith(n + ".") for n in NOT_API)
    ]


@functools.cache
def _top_level(module: str) -> dict[str, str | None]:
    """Each name assigned at the top level of ``module`` -> its docstring (``#:`` lines above
    the assignment, ``# fmt:`` lines between allowed, or a string below), or None."""
    path = all_modules()[module].__file__
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    body = ast.parse("\n".join(lines)).body
    found: dict[str, str | None] = {}

    def visit(body: list[ast.stmt]) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.Try):  # ``try: X = ... except ...: X = ...``
                visit(node.body)
                continue
            targets = []
            if isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            for target in targets:
                j = node.lineno - 2
                while j >= 0 and lines[j].strip().startswith("# fmt:"):
                    j -= 1
                comment = []
                while j >= 0 and lines[j].strip().startswith("#:"):
                    comment.insert(0, lines[j].strip()[2:].strip())
                    j -= 1
                after = body[i + 1] if i + 1 < len(body) else None
                if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                    comment = comment or [str(after.value.value)]
                found.setdefault(target, " ".join(comment).strip() or None)

    visit(body)
    return found


def _defined_here(module: ModuleType, name: str, obj: Any) -> bool:
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj.__module__ == module.__name__
    return not inspect.ismodule(obj) and name in _top_level(module.__name__)


def public_names(module: str) -> list[str]:
    mod = all_modules()[module]
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [
        name
        for name, obj in vars(mod).items()
        if not name.startswith("_") and _defined_here(mod, name, obj)
    ]


def canonical(module: str, name: str) -> tuple[str, str | None]:
    """Where ``module.name`` is defined (its full path) and its docstring there."""
    obj = getattr(all_modules()[module], name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        return f"{obj.__module__}.{obj.__qualname__}", doc
    for where, mod in sorted(all_modules().items(), key=lambda item: item[0] != module):
        docs = _top_level(where)
        if name in docs and getattr(mod, name, None) is obj:
            return f"{where}.{name}", docs[name]
    return f"{module}.{name}", None


def public_members(cls: type) -> dict[str, tuple[str, str | None]]:
    """Public methods and properties ``cls`` has from anomalia: name -> (where it is
    defined, its docstring)."""
    members: dict[str, tuple[str, str | None]] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is None or not owner.__module__.startswith("anomalia."):
            continue
        raw = owner.__dict__[name]
        func = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
        if isinstance(raw, property) or inspect.isfunction(func):
            members[name] = (f"{owner.__module__}.{owner.__qualname__}.{name}", func.__doc__)
    return members


@functools.cache
def every_public_name() -> list[tuple[str, str, str | None]]:
    """(path, where it is defined, docstring) of every public name, members included."""
    found = []
    for module in public_modules():
        found.append((module, module, all_modules()[module].__doc__))
        for name in public_names(module):
            path, doc = canonical(module, name)
            found.append((f"{module}.{name}", path, doc))
            obj = getattr(all_modules()[module], name)
            if inspect.isclass(obj) and obj.__module__.startswith("anomalia"):
                for member, (where, member_doc) in public_members(obj).items():
                    found.append((f"{module}.{name}.{member}", where, member_doc))
    return found


# -- what docs/api/*.md shows --------------------------------------------------------------
def api_blocks() -> dict[str, bool | set[str]]:
    """``::: identifier`` blocks of docs/api/*.md -> the members they show: all (True),
    none (``members: false``) or those listed (``members: [a, b]``)."""
    blocks: dict[str, bool | set[str]] = {}
    for page in sorted(API_PAGES.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^::: *(\S+)\n((?:[ \t]+.*\n?)*)", text, re.MULTILINE):
            option = re.search(r"^\s+members:(.*)$", match.group(2), re.MULTILINE)
            value = option.group(1).strip() if option else "true"
            listed = re.fullmatch(r"\[(.*)\]", value)
            assert listed or value in ("true", "false"), (
                f"{page.name}: write members as true, false or [a, b], not {value!r}"
            )
            shown = {n.strip() for n in listed.group(1).split(",")} if listed else value == "true"
            blocks[match.group(1)] = shown
    return blocks


def module_of(path: str) -> str:
    """The module ``path`` lies in (the longest module name that is a prefix of it)."""
    return max((m for m in all_modules() if path == m or path.startswith(m + ".")), key=len)


def reachable(path: str, blocks: dict[str, bool | set[str]]) -> bool:
    """Whether a block shows ``path``: it is the block's object, or a member (or a member's
    member) of the block's module, shown by it."""
    if path in blocks:
        return True
    module = module_of(path)
    shown = blocks.get(module, False)
    if path == module or not shown:
        return False
    return shown is True or path[len(module) + 1 :].split(".")[0] in shown


# -- the tests -----------------------------------------------------------------------------
def test_the_public_api_is_found() -> None:
    modules = public_modules()
    assert {"anomalia", "anomalia.detectors.autoencoder", "anomalia.serve"} <= set(modules)
    assert not any(m.startswith("anomalia.cli") or _private(m) for m in modules)
    assert "make_detector" in public_names("anomalia")
    assert "OperatingPoints" in public_names("anomalia.thresholds")
    assert "DEFAULT_OPTIONS" in public_names("anomalia.thresholds")
    assert "np" not in public_names("anomalia.thresholds")  # imports are not its names
    assert canonical("anomalia", "load")[0] == "anomalia.persistence.load"
    assert canonical("anomalia.models", "ACTIVATIONS")[0] == "anomalia.models.mlp.ACTIVATIONS"
    members = public_members(anomalia.detectors.autoencoder.AEDetector)
    assert members["fit"][0] == "anomalia.base.BaseDetector.fit"  # from anomalia's bases
    assert "transform" in members and "get_params" not in members  # not scikit-learn's


def test_every_public_name_has_a_docstring() -> None:
    missing = sorted({where for _, where, doc in every_public_name() if not (doc or "").strip()})
    assert not missing, (
        "public names without a docstring (a constant: a '#:' comment line above it):\n  "
        + "\n  ".join(missing)
    )


def names_of_each_object() -> dict[str, set[str]]:
    """Where each public object is defined -> every public path to it (and that place)."""
    names: dict[str, set[str]] = {}
    for path, where, _ in every_public_name():
        names.setdefault(where, {where}).add(path)
    return names


def test_every_public_name_is_in_an_api_page() -> None:
    blocks = api_blocks()
    unreachable = sorted(
        min(paths)
        for paths in names_of_each_object().values()
        if not any(reachable(path, blocks) for path in paths)
    )
    assert not unreachable, (
        "public names that no '::: module' block of docs/api/*.md shows (add the module "
        "to a page, and the page to mkdocs.yml's nav):\n  " + "\n  ".join(unreachable)
    )


def _inventory(path: Path) -> set[str]:
    """The object names of a Sphinx inventory (objects.inv, version 2)."""
    data = path.read_bytes()
    header, _, body = data.partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2"), header[:60]
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines()}


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path) -> None:
    tools = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")
    missing = [name for name in tools if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[docs]' (make docs)")
    site = tmp_path / "site"
    path = [str(SRC.parent), os.environ.get("PYTHONPATH")]  # the sources under test
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",  # mkdocs-material's banner about MkDocs 2.0
        "PYTHONPATH": os.pathsep.join(filter(None, path)),
    }
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, f"mkdocs build --strict failed:\n{res.stderr[-6000:]}"
    assert (site / "cli" / "index.html").is_file() and (site / "guide" / "index.html").is_file()
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert 'id="fit"' in cli and "--label-column" in cli  # the CLI page, from the app
    shown = _inventory(site / "objects.inv")
    absent = sorted(min(paths) for paths in names_of_each_object().values() if not paths & shown)
    assert not absent, "public names that no page of the site shows:\n  " + "\n  ".join(absent)
