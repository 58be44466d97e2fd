"""`python -m fledgling.cli` is the `fledgling` command."""

from fledgling.cli import main

main()
