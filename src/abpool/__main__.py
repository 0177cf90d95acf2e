"""``python -m abpool`` runs the command line."""

from abpool.cli import run

run()
