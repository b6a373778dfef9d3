"""Entry point of the ``bacalhau`` command."""

from __future__ import annotations


def main() -> None:
    from bacalhau.cli import cli

    cli()


if __name__ == "__main__":
    main()
