"""The installed anomalia's version (from its package metadata), importable from any module
without importing the package's top level."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anomalia")
    """The installed anomalia's version, e.g. ``"0.1.0"`` (``"0.0.0"``: not installed)."""
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
