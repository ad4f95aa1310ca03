"""One command-line interface; every MLproject entry point calls it. Each command parses its
options and delegates: the work is in the modules it calls (:mod:`deepfake_detection.jobs` for
the commands that chain steps)."""

from __future__ import annotations

import logging

import click

from deepfake_detection.cli import access_commands, model_commands, train_commands
from deepfake_detection.errors import DeepfakeError


class _Group(click.Group):
    """Turns the errors users can act on into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DeepfakeError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="deepfake-image-detection")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
def main(verbose: bool) -> None:
    """Tell real photographs from GAN-generated images. Labels: fake = 1 (positive), real = 0."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


for command in (
    train_commands.prepare,
    train_commands.train,
    train_commands.tune,
    train_commands.main_job,
    model_commands.promote,
    model_commands.compare,
    model_commands.evaluate,
    model_commands.predict,
    model_commands.explain,
    model_commands.serve,
    model_commands.ui,
    access_commands.access,
):
    main.add_command(command)

__all__ = ["main"]
