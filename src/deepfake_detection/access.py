"""Who may do what on a shared tracking server: MLflow's basic-auth, three roles, one extra rule.

The server runs MLflow's own authentication app with one addition, ``mlflow server --app-name
deepfake-auth`` (:func:`create_app`): the registry's release decisions need MANAGE on the
registered model. MLflow alone lets anyone with EDIT on ``deepfake-<arch>`` (needed to register a
version) also move its ``champion`` alias and ``Production`` stage (measured with MLflow 3.17.2);
the rule keeps registering and releasing apart. Release decisions: setting or deleting the
``champion`` alias, a stage transition into or out of ``Production``, renaming a registered
model, and the registered-model tags that record a promotion by hand.

Roles are MLflow roles (its RBAC API), made by :func:`init` and given by :func:`grant`; each
holds permissions on the experiment ``deepfake-detection``, on every ``deepfake-<arch>`` and on
the experiment ``deepfake-comparisons`` (where readers log their compare runs):

- ``deepfake-reader``: READ, READ, EDIT
- ``deepfake-trainer``: EDIT, EDIT, EDIT
- ``deepfake-release-manager``: READ, MANAGE, EDIT

Clients talk plain REST here (``mlflow.server.auth`` itself needs the server's Flask extras), with
MLflow's own credentials (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``). Against a
server without authentication (or a local store) every check passes: there is no one to ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepfake_detection.errors import TrackingError
from deepfake_detection.tracking import EXPERIMENT_NAME as EXPERIMENT

COMPARISONS = "deepfake-comparisons"  # where readers log their compare runs
WORKSPACE = "default"  # MLflow's workspace when workspaces are off
LEVELS = ["NO_PERMISSIONS", "READ", "USE", "EDIT", "MANAGE"]  # each includes the ones before it
ROLES = {  # role -> (experiment, registered models, comparisons experiment)
    "reader": ("READ", "READ", "EDIT"),
    "trainer": ("EDIT", "EDIT", "EDIT"),
    "release-manager": ("READ", "MANAGE", "EDIT"),
}
RELEASE_TAG_PREFIX = "champion_"  # registry.HAND_PICKED / HAND_PICKED_AMONG
CREDENTIALS = "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"


def role_name(role: str) -> str:
    return f"deepfake-{role}"


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool


def _http(uri: str):
    return uri.startswith(("http://", "https://"))


def _call(uri: str, method: str, endpoint: str, **kwargs):
    """One REST call with MLflow's credentials for ``uri``; the response, whatever its status."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        return http_request(get_default_host_creds(uri), endpoint, method, max_retries=0, timeout=30, **kwargs)
    except MlflowException as error:  # connection refused, timeout
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {error}") from None


def _json(uri: str, method: str, endpoint: str, what: str, **kwargs) -> dict:
    response = _call(uri, method, endpoint, **kwargs)
    if response.status_code != 200:
        raise TrackingError(f"{uri}: could not {what}: HTTP {response.status_code} {response.text.strip()[:200]}")
    return response.json() if response.content else {}


def _username(uri: str) -> str:
    from mlflow.utils.credentials import get_default_host_creds

    return get_default_host_creds(uri).username or ""


def current_user(uri: str) -> User | None:
    """The logged-in user, ``None`` where the server has no authentication (or is a local store)."""
    if not _http(uri):
        return None
    username = _username(uri)
    response = _call(uri, "GET", "/api/2.0/mlflow/users/current")
    if response.status_code == 404:
        return None  # no authentication on this server
    if response.status_code == 401:
        if not username:
            raise TrackingError(
                f"{uri} asks for a login and none is set: export {CREDENTIALS} "
                "(a user the server's admin created with `deepfake-detection access grant`)"
            )
        raise TrackingError(f"{uri} refused the login of user {username!r}: wrong password or no such user")
    if response.status_code != 200:
        raise TrackingError(f"{uri}: could not ask who is logged in: HTTP {response.status_code}")
    user = response.json()["user"]
    return User(user["username"], bool(user.get("is_admin")))


def permission(uri: str, user: User, resource_type: str, resource_id: str) -> str:
    """``user``'s effective permission on one resource, as MLflow resolves it for a real request."""
    if user.is_admin:
        return "MANAGE"
    found = _json(
        uri,
        "GET",
        "/api/3.0/mlflow/users/permissions/get",
        f"read the permissions of {user.name!r}",
        params={"username": user.name, "resource_type": resource_type, "resource_id": resource_id},
    )
    return found.get("permission", "NO_PERMISSIONS")


def _at_least(found: str, needed: str) -> bool:
    return LEVELS.index(found if found in LEVELS else "NO_PERMISSIONS") >= LEVELS.index(needed)


def _experiment_id(name: str) -> str | None:
    """The experiment's id; ``None`` when there is no such experiment, ``""`` when the user may
    not even read it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow.get_experiment_by_name(name)
    except MlflowException:
        return ""
    return None if found is None else found.experiment_id


def _model_exists(name: str) -> bool:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_registered_model(name)
    except MlflowException as error:
        return error.error_code != "RESOURCE_DOES_NOT_EXIST"  # a refusal: it exists, reported below
    return True


def require(what: str, *, experiment: str = "", experiment_level: str = "", models=(), model_level: str = "") -> None:
    """Raise one line naming the server, the user and every missing permission for ``what``.

    A resource that does not exist yet needs no permission here: whoever creates it owns it
    (MLflow gives its creator MANAGE), which is why ``access init`` creates them all first.
    """
    from deepfake_detection.tracking import tracking_uri

    uri = tracking_uri()
    user = current_user(uri)
    if user is None:
        return
    missing = []
    if experiment:
        experiment_id = _experiment_id(experiment)
        if experiment_id == "":
            missing.append(f"{experiment_level} on experiment {experiment!r} (may not even read it)")
        elif experiment_id is not None:
            found = permission(uri, user, "experiment", experiment_id)
            if not _at_least(found, experiment_level):
                missing.append(f"{experiment_level} on experiment {experiment!r} (has {found})")
    for name in models:
        if _model_exists(name):
            found = permission(uri, user, "registered_model", name)
            if not _at_least(found, model_level):
                missing.append(f"{model_level} on registered model {name!r} (has {found})")
    if missing:
        raise TrackingError(
            f"{uri}: user {user.name!r} may not {what}: needs {'; '.join(missing)}; "
            "ask the server's admin (`deepfake-detection access grant`)"
        )


def may_release(name: str) -> bool:
    """Whether the logged-in user may move ``name``'s champion (MANAGE on it, or no authentication)."""
    from deepfake_detection.tracking import tracking_uri

    uri = tracking_uri()
    user = current_user(uri)
    return user is None or _at_least(permission(uri, user, "registered_model", name), "MANAGE")


# ---- administration: roles and users (the admin's credentials) ----


def _admin(uri: str) -> User:
    if not _http(uri):
        raise TrackingError(f"access is managed on an MLflow server with authentication; {uri} is a local store")
    user = current_user(uri)
    if user is None:
        raise TrackingError(f"{uri} has no authentication: start it with `mlflow server --app-name deepfake-auth`")
    if not user.is_admin:
        raise TrackingError(f"{uri}: user {user.name!r} is not an admin; roles are managed with the admin's login")
    return user


def _roles(uri: str) -> dict[str, dict]:
    listed = _json(uri, "GET", "/api/3.0/mlflow/roles/list", "list roles", params={"workspace": WORKSPACE})
    return {role["name"]: role for role in listed.get("roles", [])}


def init(architectures: list[str]) -> dict[str, list[str]]:
    """Create the experiments, one registered model per architecture and the three roles with
    their permissions, as the admin (so that no trainer owns them); run again, it changes only
    what differs. Returns each role's permissions."""
    from mlflow import MlflowClient

    from deepfake_detection import registry, tracking

    _admin(tracking.tracking_uri())
    uri = tracking.configure()
    client = MlflowClient()
    experiments = {name: tracking.ensure_experiment(name) for name in (EXPERIMENT, COMPARISONS)}
    models = [registry.registered_name(a) for a in architectures]
    for name in models:
        if not _model_exists(name):
            client.create_registered_model(name, tags={"positive_class": "fake"})
    existing = _roles(uri)
    summary = {}
    for role, (experiment_level, model_level, comparisons_level) in ROLES.items():
        name = role_name(role)
        if name not in existing:
            existing[name] = _json(
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
            for p in _json(
                uri, "GET", "/api/3.0/mlflow/roles/permissions/list", "list permissions", params={"role_id": role_id}
            ).get("role_permissions", [])
        }
        for (kind, resource), level in wanted.items():
            if (kind, resource) not in have:
                _json(
                    uri,
                    "POST",
                    "/api/3.0/mlflow/roles/permissions/add",
                    f"give {name} {level} on {kind} {resource}",
                    json={"role_id": role_id, "resource_type": kind, "resource_pattern": resource, "permission": level},
                )
            elif have[(kind, resource)]["permission"] != level:
                _json(
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
    return _call(uri, "GET", "/api/2.0/mlflow/users/get", params={"username": username}).status_code == 200


def user_exists(uri: str, username: str) -> bool:
    """Whether ``username`` is on the server (asked with the admin's login, which this checks)."""
    _admin(uri)
    return _has_user(uri, username)


def describe(architectures: list[str]) -> list[str]:
    """Lines saying what the logged-in user may do: roles, and the permission on each resource."""
    from deepfake_detection import registry
    from deepfake_detection.tracking import configure

    uri = configure()
    user = current_user(uri)
    if user is None:
        return [f"{uri}: no authentication, everyone may do everything"]
    held = _json(uri, "GET", "/api/3.0/mlflow/users/roles/list", "list roles", params={"username": user.name})
    roles = sorted(r["name"] for r in held.get("roles", []) if not r["name"].startswith("__user_"))
    lines = [f"{uri}: user {user.name!r}" + (" (admin)" if user.is_admin else "") + f", roles: {roles or 'none'}"]
    for experiment in (EXPERIMENT, COMPARISONS):
        experiment_id = _experiment_id(experiment)
        if experiment_id:
            found = permission(uri, user, "experiment", experiment_id)
        else:
            found = "no such experiment" if experiment_id is None else "NO_PERMISSIONS"
        lines.append(f"  experiment {experiment}: {found}")
    for name in (registry.registered_name(a) for a in architectures):
        found = permission(uri, user, "registered_model", name) if _model_exists(name) else "no such model"
        lines.append(f"  registered model {name}: {found}")
    return lines


def grant(username: str, role: str, password: str = "") -> bool:
    """Give ``username`` a role (creating the user with ``password`` when given and not there yet).
    Returns whether the user was created."""
    from deepfake_detection.tracking import configure, tracking_uri

    _admin(tracking_uri())
    uri = configure()
    if role not in ROLES:
        raise TrackingError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    roles = _roles(uri)
    if role_name(role) not in roles:
        raise TrackingError(f"{uri} has no role {role_name(role)}: run `deepfake-detection access init` first")
    exists = _has_user(uri, username)
    if not exists:
        if not password:
            raise TrackingError(f"{uri} has no user {username!r}: give a password to create it")
        _json(
            uri,
            "POST",
            "/api/2.0/mlflow/users/create",
            f"create user {username!r}",
            json={"username": username, "password": password},
        )
    held = _json(uri, "GET", "/api/3.0/mlflow/users/roles/list", "list roles", params={"username": username})
    if role_name(role) not in {r["name"] for r in held.get("roles", [])}:
        _json(
            uri,
            "POST",
            "/api/3.0/mlflow/roles/assign",
            f"give {username!r} the role {role_name(role)}",
            json={"username": username, "role_id": roles[role_name(role)]["id"]},
        )
    return not exists


# ---- the server side: `mlflow server --app-name deepfake-auth` ----


def _release_decision(path: str, params: dict) -> str:
    """What release decision a registry request makes ('' for none)."""
    if path.endswith("/mlflow/registered-models/alias"):
        return "moving the champion alias" if params.get("alias") == "champion" else ""
    if path.endswith("/mlflow/registered-models/rename"):
        return "renaming it"
    if path.endswith(("/mlflow/registered-models/set-tag", "/mlflow/registered-models/delete-tag")):
        return (
            "changing the record of a promotion by hand"
            if str(params.get("key", "")).startswith(RELEASE_TAG_PREFIX)
            else ""
        )
    if path.endswith("/mlflow/model-versions/transition-stage"):
        if str(params.get("stage", "")).lower() == "production":
            return "moving a version into Production"
        from mlflow.server.handlers import _get_model_registry_store

        try:
            current = _get_model_registry_store().get_model_version(params["name"], params["version"]).current_stage
        except Exception:
            return ""  # no such version: MLflow's own handler answers
        return "moving its Production version out of Production" if current == "Production" else ""
    return ""


def _guard_release():
    """Before-request hook after basic-auth's: release decisions need MANAGE on the model."""
    from flask import Response, request
    from mlflow.server import auth

    if request.method not in ("POST", "PATCH", "DELETE") or "/mlflow/" not in request.path:
        return None
    params = {**request.args.to_dict(), **(request.get_json(silent=True) or {})}
    decision = _release_decision(request.path, params)
    if not decision:
        return None
    authorization = auth.authenticate_request()
    if not isinstance(authorization, auth.Authorization) or auth.sender_is_admin():
        return None  # basic-auth already answered an unauthenticated request
    name = params.get("name", "")
    if auth._get_registered_model_permission(name).can_manage:
        return None
    return Response(
        f"Permission denied: {decision} on registered model {name!r} is a release decision: it needs MANAGE "
        f"on the model (the release-manager role), which user {authorization.username!r} does not have",
        403,
    )


def create_app(app=None):
    """MLflow's basic-auth app plus the release rule (entry point ``mlflow.app: deepfake-auth``)."""
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as basic_auth

    served = basic_auth(app or flask_app)
    (app or flask_app).before_request(_guard_release)
    return served
