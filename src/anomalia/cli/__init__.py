"""The ``anomalia`` command line (Typer + Rich)."""
