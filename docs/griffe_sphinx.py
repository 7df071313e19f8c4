"""A griffe extension: the Sphinx conventions of the docstrings, for mkdocstrings.

Constants are documented the Sphinx way, by ``#:`` comment lines right above them (a
``# fmt:`` line may sit between): griffe reads docstrings only, so each such comment becomes
the constant's docstring.

The docstrings are numpydoc and name other objects the Sphinx way (``:func:`train```,
``:class:`~anomalia.io.TableSpec```). mkdocstrings writes cross-references in Markdown
(``[`TableSpec`][anomalia.io.TableSpec]``), so each role is rewritten once the package is
loaded, resolved as Python resolves the name where the docstring sits (the object's members,
inherited ones included, then its parents', then the module's imports):

- an anomalia object with a public path, or re-exported under one (``__all__``), becomes a
  link; ``mkdocs build --strict`` fails when no page documents it;
- a name that resolves to nothing, and is no Python built-in, stays a link too, so a typo or
  a renamed function breaks the strict build instead of rendering quietly;
- anything else (a private helper, the standard library, NumPy, scikit-learn, PyTorch: the
  build reads no other project's inventory, it runs offline) is shown as code.

``~`` shows the last part of the name only, as in Sphinx; a leading ``.`` is dropped. A field
with no docstring of its own (a dataclass field, described in its class's ``Parameters``)
links to its class. A paragraph ending in ``::`` (a reST literal block follows, indented: a
Markdown code block too) ends in ``:``, as Sphinx shows it.
"""

from __future__ import annotations

import builtins
import importlib.util
import re
from typing import Any

import griffe

LITERAL_BLOCK = re.compile(r"(?<=\S)::\n(?=\n[ \t]+\S)")
ROLE = re.compile(r":(?:py:)?(?:attr|class|data|exc|func|meth|mod|obj):`(~?)\.?([\w.]+)`")
PACKAGE = "anomalia"


def _private(path: str) -> bool:
    return any(part.startswith("_") and not part.endswith("__") for part in path.split("."))


def _scope_lookup(obj: Any, first: str) -> str | None:
    """The full path ``first`` names where ``obj``'s docstring sits, or None."""
    scope = obj
    while scope is not None:
        members = scope.all_members if scope.is_class else scope.members
        if first in members:
            member = members[first]
            if member.is_alias and not getattr(member, "inherited", False):
                return member.target_path  # an import: where it is defined
            return member.path  # inherited members show under the inheriting class too
        if first == scope.name and not scope.is_module:
            return scope.path
        scope = scope.parent
    return None


def _exports(pkg: Any) -> dict[str, str]:
    """Where the reference shows each object re-exported under a public name: the target
    path of every public alias (``anomalia.stream.batches`` for ``anomalia.stream._files``'s
    ``batches``) -> that alias's path, the shortest one when there are several."""
    shown: dict[str, str] = {}
    stack: list[Any] = [pkg]
    while stack:
        obj = stack.pop()
        for member in obj.members.values():
            if not member.is_alias:
                stack.append(member)
            elif (
                member.is_exported
                and not _private(member.path)
                and member.target_path.startswith(PACKAGE + ".")
            ):
                best = shown.get(member.target_path)
                if best is None or len(member.path) < len(best):
                    shown[member.target_path] = member.path
    return shown


def _documented(collection: Any, path: str) -> str:
    """``path``, or its class's when it is an attribute without a docstring of its own."""
    try:
        target = collection.get_member(path)
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return path
    if target.is_attribute and target.docstring is None and target.parent.is_class:
        return target.parent.path
    return path


def _comment_docstring(obj: Any, parser: Any, options: dict[str, Any]) -> None:
    """Give the constant ``obj`` the ``#:`` comment lines above it as its docstring."""
    if obj.lineno is None or obj.filepath is None:
        return
    try:  # a LinesCollection has no .get
        lines = obj.lines_collection[obj.filepath]
    except KeyError:
        return
    i = obj.lineno - 2  # the line above, 0-based
    while i >= 0 and lines[i].strip().startswith("# fmt:"):
        i -= 1
    comment: list[str] = []
    while i >= 0 and lines[i].strip().startswith("#:"):
        comment.insert(0, lines[i].strip()[2:].removeprefix(" "))
        i -= 1
    if comment:
        obj.docstring = griffe.Docstring(
            "\n".join(comment),
            lineno=i + 2,
            endlineno=i + 1 + len(comment),
            parent=obj,
            parser=parser,
            parser_options=options,
        )


def rewrite(text: str, obj: Any, exports: dict[str, str], collection: Any) -> str:
    """``text`` with every Sphinx role replaced by a cross-reference or by code."""

    def replace(match: re.Match[str]) -> str:
        short, name = match.group(1) == "~", match.group(2)
        label = f"`{name.rsplit('.', 1)[-1] if short else name}`"
        first, _, rest = name.partition(".")
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            path: str | None = name
        else:
            path = _scope_lookup(obj, first)
            if path is not None and rest:
                path = f"{path}.{rest}"
        if path is None:
            # unknown here: a built-in or another installed project's full name shows as
            # code; anything else must break the build
            if hasattr(builtins, first) or (rest and importlib.util.find_spec(first)):
                return label
            return f"[{label}][{name}]"
        if path != PACKAGE and not path.startswith(PACKAGE + "."):
            return label  # another project's object
        path = _documented(collection, path)
        if not _private(path):
            return f"[{label}][{path}]"
        # a private path: linked where a public alias shows it (or its parent), else code
        head, tail = path, ""
        while head:
            if head in exports:
                return f"[{label}][{exports[head]}{tail}]"
            head, _, last = head.rpartition(".")
            tail = f".{last}{tail}"
        return label

    return ROLE.sub(replace, LITERAL_BLOCK.sub(":\n", text))


class SphinxConventions(griffe.Extension):
    """``#:`` comments as docstrings, Sphinx roles as cross-references (see above)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != PACKAGE:
            return
        exports, collection = _exports(pkg), loader.modules_collection
        parser = pkg.docstring.parser if pkg.docstring else None
        options = pkg.docstring.parser_options if pkg.docstring else {}
        objects: list[Any] = []
        stack: list[Any] = [pkg]
        while stack:
            obj = stack.pop()
            objects.append(obj)
            if obj.is_attribute and obj.docstring is None:
                _comment_docstring(obj, parser, options)
            stack.extend(member for member in obj.members.values() if not member.is_alias)
        for obj in objects:  # every #: comment is a docstring now: _documented sees them
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = rewrite(obj.docstring.value, obj, exports, collection)
