"""`python -m mailbot` is the same as the `mailbot` command."""

from mailbot.runtime.cli import main

main()
