"""Permission checks a command makes before any work, as the logged-in user (plain REST:
``mlflow.server.auth`` itself needs the server's Flask extras)."""

from __future__ import annotations

from dataclasses import dataclass

from deepfake_detection.errors import TrackingError
from deepfake_detection.tracking import tracking_uri

COMPARISONS = "deepfake-comparisons"  # where readers log their compare runs
LEVELS = ["NO_PERMISSIONS", "READ", "USE", "EDIT", "MANAGE"]  # each includes the ones before it
CREDENTIALS = "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool


def is_http(uri: str):
    return uri.startswith(("http://", "https://"))


def call(uri: str, method: str, endpoint: str, **kwargs):
    """One REST call with MLflow's credentials for ``uri``; the response, whatever its status."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        return http_request(get_default_host_creds(uri), endpoint, method, max_retries=0, timeout=30, **kwargs)
    except MlflowException as error:  # connection refused, timeout
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {error}") from None


def call_json(uri: str, method: str, endpoint: str, what: str, **kwargs) -> dict:
    response = call(uri, method, endpoint, **kwargs)
    if response.status_code != 200:
        raise TrackingError(f"{uri}: could not {what}: HTTP {response.status_code} {response.text.strip()[:200]}")
    return response.json() if response.content else {}


def _username(uri: str) -> str:
    from mlflow.utils.credentials import get_default_host_creds

    return get_default_host_creds(uri).username or ""


def current_user(uri: str) -> User | None:
    """The logged-in user, ``None`` where the server has no authentication (or is a local store)."""
    if not is_http(uri):
        return None
    username = _username(uri)
    response = call(uri, "GET", "/api/2.0/mlflow/users/current")
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
    found = call_json(
        uri,
        "GET",
        "/api/3.0/mlflow/users/permissions/get",
        f"read the permissions of {user.name!r}",
        params={"username": user.name, "resource_type": resource_type, "resource_id": resource_id},
    )
    return found.get("permission", "NO_PERMISSIONS")


def at_least(found: str, needed: str) -> bool:
    return LEVELS.index(found if found in LEVELS else "NO_PERMISSIONS") >= LEVELS.index(needed)


def experiment_id_of(name: str) -> str | None:
    """The experiment's id; ``None`` when there is no such experiment, ``""`` when the user may
    not even read it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow.get_experiment_by_name(name)
    except MlflowException:
        return ""
    return None if found is None else found.experiment_id


def model_exists(name: str) -> bool:
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
    uri = tracking_uri()
    user = current_user(uri)
    if user is None:
        return
    missing = []
    if experiment:
        experiment_id = experiment_id_of(experiment)
        if experiment_id == "":
            missing.append(f"{experiment_level} on experiment {experiment!r} (may not even read it)")
        elif experiment_id is not None:
            found = permission(uri, user, "experiment", experiment_id)
            if not at_least(found, experiment_level):
                missing.append(f"{experiment_level} on experiment {experiment!r} (has {found})")
    for name in models:
        if model_exists(name):
            found = permission(uri, user, "registered_model", name)
            if not at_least(found, model_level):
                missing.append(f"{model_level} on registered model {name!r} (has {found})")
    if missing:
        raise TrackingError(
            f"{uri}: user {user.name!r} may not {what}: needs {'; '.join(missing)}; "
            "ask the server's admin (`deepfake-detection access grant`)"
        )


def may_release(name: str) -> bool:
    """Whether the logged-in user may move ``name``'s champion (MANAGE on it, or no authentication)."""
    uri = tracking_uri()
    user = current_user(uri)
    return user is None or at_least(permission(uri, user, "registered_model", name), "MANAGE")
