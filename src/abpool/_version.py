"""The installed version of abpool."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("abpool")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
