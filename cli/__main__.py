"""`python -m cli` is `mentor`."""

from cli import main

main()
