"""``python -m bacalhau``: the same command tree as the ``bacalhau`` executable."""

from bacalhau.cli import main

main()
