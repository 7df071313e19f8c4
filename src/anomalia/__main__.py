"""``python -m anomalia ...``: the ``anomalia`` command."""

from anomalia.cli.app import main

if __name__ == "__main__":
    main()
