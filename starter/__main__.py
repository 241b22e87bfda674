"""`python -m starter` is the `failback` command."""

from starter.cli import main

main()
