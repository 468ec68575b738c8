"""The ``llkl-db`` command line: thin commands over the public functions of :mod:`llkl_db`."""

from llkl_db.cli.app import app, main

__all__ = ["app", "main"]
