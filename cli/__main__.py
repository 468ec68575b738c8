"""`python -m llkl_db.cli`."""

from llkl_db.cli.app import main

main()
