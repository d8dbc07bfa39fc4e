"""`python -m admin` runs the `barid` command."""

from admin.cli import main

main()
