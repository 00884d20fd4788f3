"""Command-line interface: the only module that prints."""

from __future__ import annotations

import click

from reconciler import __version__


@click.group()
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """WeChat Pay coupon stocks as code."""


def main() -> None:
    cli()
