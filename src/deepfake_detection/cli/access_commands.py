"""``access init / grant / show``: users and roles on a shared server (the admin's commands)."""

from __future__ import annotations

import click

from deepfake_detection.access.admin import ROLES


@click.group()
def access() -> None:
    """Who may do what on a shared server started with `mlflow server --app-name deepfake-auth`.

    Roles: reader (load models, predict, compare into experiment deepfake-comparisons), trainer
    (train / tune, register versions: challenger), release-manager (move champion / Production).
    `init` and `grant` need the admin's login (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).
    """


@access.command("init")
@click.option("--arch", default="all", help="Architectures whose registered models to create (comma list or all).")
def access_init(arch: str) -> None:
    """Create the experiments, the registered models and the three roles (admin; run again: changes what differs)."""
    from deepfake_detection.access import admin as roles
    from deepfake_detection.architectures import ARCHITECTURES, parse_architectures

    names = list(ARCHITECTURES) if arch.strip() == "all" else parse_architectures(arch)
    for role, permissions in roles.init(names).items():
        click.echo(f"{role}: " + "; ".join(permissions))


@access.command("grant")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="The role to give.")
@click.option(
    "--password",
    envvar="DEEPFAKE_NEW_USER_PASSWORD",
    default="",
    show_default=False,
    help="Password for a user not yet on the server (asked for when needed; env DEEPFAKE_NEW_USER_PASSWORD).",
)
def access_grant(username: str, role: str, password: str) -> None:
    """Give USERNAME a role (admin), creating the user when it is not on the server yet."""
    from deepfake_detection import tracking
    from deepfake_detection.access import admin as roles

    if not password and not roles.user_exists(tracking.tracking_uri(), username):
        password = click.prompt(f"password for the new user {username}", hide_input=True, confirmation_prompt=True)
    created = roles.grant(username, role, password)
    click.echo(f"{'created user' if created else 'user'} {username}: role {roles.role_name(role)}")


@access.command("show")
@click.option("--arch", default="all", help="Architectures whose registered models to show (comma list or all).")
def access_show(arch: str) -> None:
    """What the logged-in user may do on the tracking server (MLflow's own resolution)."""
    from deepfake_detection.access import admin as roles
    from deepfake_detection.architectures import ARCHITECTURES, parse_architectures

    names = list(ARCHITECTURES) if arch.strip() == "all" else parse_architectures(arch)
    for line in roles.describe(names):
        click.echo(line)
