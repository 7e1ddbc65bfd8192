"""The team server's registry rules on top of MLflow's basic-auth app (`mlflow server --app-name
visionops-auth`, an `mlflow.app` entry point): MLflow lets anyone with EDIT on a registered model
set any alias and any version tag. Two promises need more:

* **Only the gate moves `@champion`**: setting or deleting that alias, and renaming a
  registered model, need MANAGE on it (the identity that runs the gate: CI's login, made by
  `team_stack.py grant ci --gate`) or an admin.
* **A version's custody record is written once**: the hashes a version was registered with
  (`CUSTODY_TAGS`) are set in the same request that creates it; later writes or deletes are
  refused for everyone, so what a consumer checks the files against cannot be changed after the
  gate.

Everything else is MLflow's own authentication and permissions, unchanged.
"""

from __future__ import annotations

import re

from visionops.tracking.version_files import FILES_TAG, MANIFEST_TAG

CHAMPION = "champion"
CUSTODY_TAGS = frozenset({"model.sha256", "onnx.sha256", FILES_TAG, MANIFEST_TAG})
ALIAS = re.compile(r"/mlflow/registered-models/alias$")
RENAME = re.compile(r"/mlflow/registered-models/rename$")
VERSION_TAG = re.compile(r"/mlflow/model-versions/(set|delete)-tag$")


def create_app(app=None):
    """MLflow's basic-auth app with the rules above, checked after MLflow has authenticated the
    request (an unauthenticated one never reaches them)."""
    from mlflow.server import app as flask_app
    from mlflow.server import auth

    served = auth.create_app(app or flask_app)
    (app or flask_app).before_request(enforce_registry_rules)
    return served


def enforce_registry_rules():
    """None to let the request through, or MLflow's 403 response naming the rule."""
    from flask import request

    path = request.path
    if request.method not in ("POST", "DELETE", "PATCH") or not (
        ALIAS.search(path) or RENAME.search(path) or VERSION_TAG.search(path)
    ):
        return None
    params = _params(request)
    if VERSION_TAG.search(path) and params.get("key") in CUSTODY_TAGS:
        return _forbidden(
            f"tag '{params['key']}' is part of version {params.get('version')}'s custody record, "
            "written once when the version was registered: register a new version instead"
        )
    moves_champion = ALIAS.search(path) and str(params.get("alias", "")).lower() == CHAMPION
    if (moves_champion or RENAME.search(path)) and not _may_manage(str(params.get("name", ""))):
        what = "move @champion of" if moves_champion else "rename"
        return _forbidden(
            f"only the gate's identity may {what} '{params.get('name')}' (MANAGE on the model): "
            "the register stage run by CI promotes; an admin grants it with "
            "`team_stack.py grant USER --gate`"
        )
    return None


def _params(request) -> dict:
    body = request.get_json(silent=True) if request.is_json else None
    return (body if isinstance(body, dict) else {}) | dict(request.args)


def _may_manage(name: str) -> bool:
    """Is the authenticated user an admin, or a MANAGE holder on registered model `name`?"""
    from mlflow.server import auth

    username = auth.authenticate_request().username
    if auth.store.get_user(username).is_admin:
        return True
    try:
        return bool(auth._get_registered_model_permission(name).can_manage)
    except Exception:  # no such model: nobody but an admin
        return False


def _forbidden(message: str):
    from flask import make_response

    return make_response({"error_code": "PERMISSION_DENIED", "message": message}, 403)
