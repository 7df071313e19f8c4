"""MkDocs hooks: the pages generated at build time, so that none can drift from its source.

- ``cli.md``: every command of the Typer app (``anomalia.cli.app.app``), with its usage,
  help and options (names, types, defaults, help), as ``anomalia COMMAND --help`` prints
  them: walked with ``typer.main.get_command``.
- ``guide.md``: the repository's README.md as it stands, with the files it links (the
  benchmark results and their README, figures, tables) added to the site under the same
  relative paths, so its links and pictures work and ``--strict`` checks them.

``python docs/hooks.py`` prints the CLI page (for a look without building the site).
"""

from __future__ import annotations

import html
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the CLI of the sources documented (mkdocstrings reads src/ too), not of another install
sys.path.insert(0, str(ROOT / "src"))
#: Repository file -> page it becomes (every other linked file keeps its relative path).
RENAMED = {"README.md": "guide.md"}
#: Markdown links and images: ``[text](target)``, ``![alt](target "title")``.
LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")


# -- the CLI reference ---------------------------------------------------------------------
def _plain(text: str) -> str:
    """Help text as the terminal shows it: Rich markup resolved, paragraphs unwrapped."""
    from rich.text import Text

    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(Text.from_markup(p).plain for p in paragraphs if p)


def _text(text: str) -> str:
    """Help text as Markdown that reads no Markdown or HTML into it (``<out>_summary.md``)."""
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", html.escape(text, quote=False))


def _cell(text: str) -> str:
    """Help text for a Markdown table cell: its paragraphs on one line."""
    return _text(text).replace("\n\n", "<br>").replace("\n", " ")


def _param_rows(command: Any, ctx: Any) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        names = [*param.opts, *param.secondary_opts]
        if param.param_type_name == "argument":
            names = [param.metavar or param.name.upper()]
        is_flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
        kind = "" if is_flag else (param.display_type_rich(ctx) or "")
        help_text = _plain(param.help or "")
        # the record's help is the help text and then its extras: [default: ...; required]
        extra = record[1][len(param.help or "") :].strip() if record[1] else ""
        default, notes = "", []
        if extra.startswith("[") and extra.endswith("]"):
            for item in extra[1:-1].split("; "):
                if item.startswith("default: "):
                    default = item.removeprefix("default: ")
                elif item == "required":
                    default = "required"
                else:
                    notes.append(item)
        if notes:
            help_text = f"{help_text} [{'; '.join(notes)}]".strip()
        rows.append(
            "| "
            + " | ".join(
                [
                    ", ".join(f"`{name}`" for name in names),
                    f"`{kind}`" if kind else "",  # a code span needs no escaping, | included
                    f"`{default}`" if default and default != "required" else default,
                    _cell(help_text),
                ]
            )
            + " |"
        )
    return rows


def _command_section(command: Any, ctx: Any, level: int, anchor: str) -> list[str]:
    path = ctx.command_path
    lines = [f"{'#' * level} `{path}` {{ #{anchor} }}", ""]
    if command.help:
        lines += [_text(_plain(command.help)), ""]
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines += ["```console", f"$ {usage}", "```", ""]
    rows = _param_rows(command, ctx)
    if rows:
        lines += ["| Argument / option | Type | Default | Help |", "| --- | --- | --- | --- |"]
        lines += [*rows, ""]
    if command.epilog:
        lines += [_text(_plain(command.epilog)), ""]
    return lines


def cli_markdown() -> str:
    """The CLI reference page, from the Typer app itself."""
    import typer

    from anomalia.cli.app import app

    group = typer.main.get_command(app)
    ctx = group.make_context("anomalia", [], resilient_parsing=True)
    lines = [
        "# Command line",
        "",
        "Every command of `anomalia`, generated from the command-line app when the site is "
        "built: `anomalia COMMAND --help` prints the same. A user error prints one line on "
        "stderr and exits with code 2.",
        "",
        *_command_section(group, ctx, 2, "anomalia"),
        "| Command | What it does |",
        "| --- | --- |",
    ]
    commands = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        commands.append((name, command))
        summary = _plain(command.help or "").split("\n\n")[0]  # as `anomalia --help` lists it
        lines.append(f"| [`{name}`](#{name}) | {_cell(summary)} |")
    lines.append("")
    for name, command in commands:
        sub = command.make_context(name, [], parent=ctx, resilient_parsing=True)
        lines += _command_section(command, sub, 2, name)
    return "\n".join(lines)


# -- the README's guides -------------------------------------------------------------------
def _uri(repo_path: str) -> str:
    return RENAMED.get(repo_path, repo_path)


def _linked(text: str, repo_path: str) -> tuple[str, list[str]]:
    """``text`` with links to renamed files rewritten, and the repository files it links."""
    here = posixpath.dirname(repo_path)
    found: list[str] = []

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):  # a URL, an anchor, absolute
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        linked = posixpath.normpath(posixpath.join(here, path))
        if linked.startswith("../") or not (ROOT / linked).is_file():
            return match.group(0)  # mkdocs --strict reports it
        found.append(linked)
        new = posixpath.relpath(_uri(linked), posixpath.dirname(_uri(repo_path)) or ".")
        return f"{match.group(1)}{new}{hash_}{anchor}{match.group(3)}"

    return LINK.sub(fix, text), found


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    queue, done = ["README.md"], set()
    while queue:
        repo_path = queue.pop()
        if repo_path in done or files.get_file_from_path(_uri(repo_path)) is not None:
            continue
        done.add(repo_path)
        source = ROOT / repo_path
        if source.suffix == ".md":
            text, linked = _linked(source.read_text(encoding="utf-8"), repo_path)
            queue += linked
            files.append(File.generated(config, _uri(repo_path), content=text))
        else:
            files.append(File.generated(config, repo_path, abs_src_path=str(source)))
    return files


if __name__ == "__main__":
    print(cli_markdown())
