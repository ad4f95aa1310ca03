"""The plugin inside ``mlflow server --app-name deepfake-auth``: MLflow's basic-auth app plus one
rule, the registry's release decisions need MANAGE on the registered model.

MLflow alone lets anyone with EDIT on ``deepfake-<arch>`` (needed to register a version) also move
its ``champion`` alias and ``Production`` stage (measured with MLflow 3.17.2); the rule keeps
registering and releasing apart. Release decisions: setting or deleting the ``champion`` alias, a
stage transition into or out of ``Production``, renaming a registered model, and the
registered-model tags that record a promotion by hand.
"""

from __future__ import annotations

from deepfake_detection.registry import CHAMPION, HAND_PICKED, HAND_PICKED_AMONG, STAGES

RELEASE_TAGS = (HAND_PICKED, HAND_PICKED_AMONG)


def release_decision(path: str, params: dict) -> str:
    """What release decision a registry request makes ('' for none)."""
    if path.endswith("/mlflow/registered-models/alias"):
        return "moving the champion alias" if params.get("alias") == CHAMPION else ""
    if path.endswith("/mlflow/registered-models/rename"):
        return "renaming it"
    if path.endswith(("/mlflow/registered-models/set-tag", "/mlflow/registered-models/delete-tag")):
        return "changing the record of a promotion by hand" if params.get("key") in RELEASE_TAGS else ""
    if path.endswith("/mlflow/model-versions/transition-stage"):
        if str(params.get("stage", "")).lower() == STAGES[CHAMPION].lower():
            return "moving a version into Production"
        from mlflow.server.handlers import _get_model_registry_store

        try:
            current = _get_model_registry_store().get_model_version(params["name"], params["version"]).current_stage
        except Exception:
            return ""  # no such version: MLflow's own handler answers
        return "moving its Production version out of Production" if current == STAGES[CHAMPION] else ""
    return ""


def _guard_release():
    """Before-request hook after basic-auth's: release decisions need MANAGE on the model."""
    from flask import Response, request
    from mlflow.server import auth

    if request.method not in ("POST", "PATCH", "DELETE") or "/mlflow/" not in request.path:
        return None
    params = {**request.args.to_dict(), **(request.get_json(silent=True) or {})}
    decision = release_decision(request.path, params)
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
