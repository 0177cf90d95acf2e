"""The version of abpool (``pyproject.toml`` reads it from here).

Written out rather than looked up in the installed metadata, which scans the
import path on every start of the command.
"""

__version__ = "0.1.0"
