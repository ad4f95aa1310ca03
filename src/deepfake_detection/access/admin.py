"""``deepfake-detection access init / grant / show``: the experiments, registered models, roles
and users of a shared server, made over REST with the admin's login."""

from __future__ import annotations

from deepfake_detection import tracking
from deepfake_detection.access.client import (
    COMPARISONS,
    User,
    call,
    call_json,
    current_user,
    experiment_id_of,
    is_http,
    model_exists,
    permission,
)
from deepfake_detection.errors import TrackingError
from deepfake_detection.registry import registered_name
from deepfake_detection.tracking import EXPERIMENT_NAME as EXPERIMENT

WORKSPACE = "default"  # MLflow's workspace when workspaces are off
ROLES = {  # role -> (experiment, registered models, comparisons experiment)
    "reader": ("READ", "READ", "EDIT"),
    "trainer": ("EDIT", "EDIT", "EDIT"),
    "release-manager": ("READ", "MANAGE", "EDIT"),
}


def role_name(role: str) -> str:
    return f"deepfake-{role}"


def _admin(uri: str) -> User:
    if not is_http(uri):
        raise TrackingError(f"access is managed on an MLflow server with authentication; {uri} is a local store")
    user = current_user(uri)
    if user is None:
        raise TrackingError(f"{uri} has no authentication: start it with `mlflow server --app-name deepfake-auth`")
    if not user.is_admin:
        raise TrackingError(f"{uri}: user {user.name!r} is not an admin; roles are managed with the admin's login")
    return user


def _roles(uri: str) -> dict[str, dict]:
    listed = call_json(uri, "GET", "/api/3.0/mlflow/roles/list", "list roles", params={"workspace": WORKSPACE})
    return {role["name"]: role for role in listed.get("roles", [])}


def init(architectures: list[str]) -> dict[str, list[str]]:
    """Create the experiments, one registered model per architecture and the three roles with
    their permissions, as the admin (so that no trainer owns them); run again, it changes only
    what differs. Returns each role's permissions."""
    from mlflow import MlflowClient

    _admin(tracking.tracking_uri())
    uri = tracking.configure()
    client = MlflowClient()
    experiments = {name: tracking.ensure_experiment(name) for name in (EXPERIMENT, COMPARISONS)}
    models = [registered_name(a) for a in architectures]
    for name in models:
        if not model_exists(name):
            client.create_registered_model(name, tags={"positive_class": "fake"})
    existing = _roles(uri)
    summary = {}
    for role, (experiment_level, model_level, comparisons_level) in ROLES.items():
        name = role_name(role)
        if name not in existing:
            existing[name] = call_json(
                uri,
                "POST",
                "/api/3.0/mlflow/roles/create",
                f"create role {name}",
                json={"workspace": WORKSPACE, "name": name, "description": f"deepfake-image-detection {role}"},
            )["role"]
        role_id = existing[name]["id"]
        wanted = {("experiment", experiments[EXPERIMENT]): experiment_level}
        wanted[("experiment", experiments[COMPARISONS])] = comparisons_level
        wanted |= {("registered_model", model): model_level for model in models}
        have = {
            (p["resource_type"], p["resource_pattern"]): p
            for p in call_json(
                uri, "GET", "/api/3.0/mlflow/roles/permissions/list", "list permissions", params={"role_id": role_id}
            ).get("role_permissions", [])
        }
        for (kind, resource), level in wanted.items():
            if (kind, resource) not in have:
                call_json(
                    uri,
                    "POST",
                    "/api/3.0/mlflow/roles/permissions/add",
                    f"give {name} {level} on {kind} {resource}",
                    json={"role_id": role_id, "resource_type": kind, "resource_pattern": resource, "permission": level},
                )
            elif have[(kind, resource)]["permission"] != level:
                call_json(
                    uri,
                    "PATCH",
                    "/api/3.0/mlflow/roles/permissions/update",
                    f"set {name}'s permission on {kind} {resource}",
                    json={"role_permission_id": have[(kind, resource)]["id"], "permission": level},
                )
        summary[name] = [
            f"{experiment_level} on experiment {EXPERIMENT}",
            f"{model_level} on {', '.join(models)}",
            f"{comparisons_level} on experiment {COMPARISONS}",
        ]
    return summary


def _has_user(uri: str, username: str) -> bool:
    return call(uri, "GET", "/api/2.0/mlflow/users/get", params={"username": username}).status_code == 200


def user_exists(uri: str, username: str) -> bool:
    """Whether ``username`` is on the server (asked with the admin's login, which this checks)."""
    _admin(uri)
    return _has_user(uri, username)


def describe(architectures: list[str]) -> list[str]:
    """Lines saying what the logged-in user may do: roles, and the permission on each resource."""
    uri = tracking.configure()
    user = current_user(uri)
    if user is None:
        return [f"{uri}: no authentication, everyone may do everything"]
    held = call_json(uri, "GET", "/api/3.0/mlflow/users/roles/list", "list roles", params={"username": user.name})
    roles = sorted(r["name"] for r in held.get("roles", []) if not r["name"].startswith("__user_"))
    lines = [f"{uri}: user {user.name!r}" + (" (admin)" if user.is_admin else "") + f", roles: {roles or 'none'}"]
    for experiment in (EXPERIMENT, COMPARISONS):
        experiment_id = experiment_id_of(experiment)
        if experiment_id:
            found = permission(uri, user, "experiment", experiment_id)
        else:
            found = "no such experiment" if experiment_id is None else "NO_PERMISSIONS"
        lines.append(f"  experiment {experiment}: {found}")
    for name in (registered_name(a) for a in architectures):
        found = permission(uri, user, "registered_model", name) if model_exists(name) else "no such model"
        lines.append(f"  registered model {name}: {found}")
    return lines


def grant(username: str, role: str, password: str = "") -> bool:
    """Give ``username`` a role (creating the user with ``password`` when given and not there yet).
    Returns whether the user was created."""
    _admin(tracking.tracking_uri())
    uri = tracking.configure()
    if role not in ROLES:
        raise TrackingError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    roles = _roles(uri)
    if role_name(role) not in roles:
        raise TrackingError(f"{uri} has no role {role_name(role)}: run `deepfake-detection access init` first")
    exists = _has_user(uri, username)
    if not exists:
        if not password:
            raise TrackingError(f"{uri} has no user {username!r}: give a password to create it")
        call_json(
            uri,
            "POST",
            "/api/2.0/mlflow/users/create",
            f"create user {username!r}",
            json={"username": username, "password": password},
        )
    held = call_json(uri, "GET", "/api/3.0/mlflow/users/roles/list", "list roles", params={"username": username})
    if role_name(role) not in {r["name"] for r in held.get("roles", [])}:
        call_json(
            uri,
            "POST",
            "/api/3.0/mlflow/roles/assign",
            f"give {username!r} the role {role_name(role)}",
            json={"username": username, "role_id": roles[role_name(role)]["id"]},
        )
    return not exists
