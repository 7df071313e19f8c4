"""``anomalia``: fit, calibrate, score and evaluate detectors from the shell.

This module is the entry point only: the commands live in the sibling modules (each a
:class:`~anomalia.cli._common.Commands` group), which import nothing from here. Each command
parses its options and calls the library; no algorithm lives in the CLI. User errors
print one line on stderr and exit with code 2, writing no partial output (``--debug`` shows
the traceback instead).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import (
    bench,
    disentangle,
    export,
    generate,
    info,
    maps,
    outliers,
    represent,
    serve,
    speech,
    text,
    tree,
    workflow,
)
from ._common import STATE, HelpGroup, print_error

app = typer.Typer(
    name="anomalia",
    help="Find anomalies with auto-encoders and their classical rivals.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    cls=HelpGroup,
)
# One module per group of commands; ``anomalia --help`` lists them in this order.
_MODULES = (
    workflow,
    info,
    maps,
    represent,
    generate,
    disentangle,
    speech,
    text,
    tree,
    outliers,
    export,
    bench,
    serve,
)
for _module in _MODULES:
    app.add_typer(_module.app)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"anomalia {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    STATE["debug"] = debug


def main() -> None:
    """Console-script entry point: a usage error (an unknown option, a bad or missing value)
    is one ``error:`` line on stderr with exit code 2, like every other user error."""
    try:  # recent typer carries its own copy of click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - typer that depends on click
        from click.exceptions import ClickException

    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help (rich has printed it already)
            if message.strip():
                typer.echo(message, err=True)
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            print_error(message.strip().rstrip(".") + hint, exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_error("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # python -m anomalia.cli.app ...
    main()
