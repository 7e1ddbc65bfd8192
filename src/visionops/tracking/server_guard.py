"""The team server's rules on top of MLflow's basic-auth app (`mlflow server --app-name
visionops-auth`, an `mlflow.app` entry point). MLflow lets anyone with EDIT on a registered model
set any alias and any version tag, and its permission check can read a request differently from
its handler. The promises that need more:

* **One reading of a request** (tracking/request_reading.py): before MLflow authenticates or
  checks anything, a request whose parameters its check and its handler would read differently
  (query beside a body, a body not sent as JSON, a key twice) is refused with 400.
* **Only the gate moves `@champion`**: setting or deleting that alias, and renaming a
  registered model, need MANAGE on it (the identity that runs the gate: CI's login, made by
  `team_stack.py grant ci --gate`) or an admin.
* **A version's record is written once**: the custody hashes and the evidence it was registered
  with (`SEALED_TAGS`, `SEALED_PREFIXES`) are set in the request that creates it; the gate's
  decision (`gate.*`) can be written until a decision with its paired comparison is recorded.
  Later writes or deletes are refused for everyone, admins included.
* **Only admins list every user** (MLflow lets any member read the roster and admin flags).

Everything else is MLflow's own authentication and permissions, unchanged.
"""

from __future__ import annotations

import json
import re

from visionops.tracking.request_reading import Ambiguous, check, parameters
from visionops.tracking.version_files import FILES_TAG, MANIFEST_TAG

CHAMPION = "champion"
# set when the version is created (tracking/registry.log_register), never after
SEALED_TAGS = frozenset(
    {"model.sha256", "onnx.sha256", FILES_TAG, MANIFEST_TAG, "run_id", "validation.success", "export.parity"}
)
SEALED_PREFIXES = ("metric.",)
GATE_PREFIX = "gate."  # the decision: open until one with a comparison is recorded
DECISION_TAG = "gate.decision"
ALIAS = re.compile(r"/mlflow/registered-models/alias$")
RENAME = re.compile(r"/mlflow/registered-models/rename$")
VERSION_TAG = re.compile(r"/mlflow/model-versions/(set|delete)-tag$")
USER_LIST = re.compile(r"/mlflow/users/list$")


def create_app(app=None):
    """MLflow's basic-auth app with the rules above: the one-reading check first of all, the
    registry rules after MLflow has authenticated the request (an unauthenticated one never
    reaches them)."""
    from mlflow.server import app as flask_app
    from mlflow.server import auth

    flask = app or flask_app
    served = auth.create_app(flask)
    flask.before_request_funcs.setdefault(None, []).insert(0, refuse_ambiguous_requests)
    flask.before_request(enforce_registry_rules)
    return served


def is_sealed(key: str) -> bool:
    """Is version tag `key` part of what the version was registered with?"""
    return key in SEALED_TAGS or key.startswith(SEALED_PREFIXES)


def refuse_ambiguous_requests():
    """None, or a 400 naming what to change."""
    from flask import make_response, request

    try:
        check(request)
    except Ambiguous as exc:
        return make_response({"error_code": "INVALID_PARAMETER_VALUE", "message": f"refused: {exc}"}, 400)
    return None


def enforce_registry_rules():
    """None to let the request through, or MLflow's 403 response naming the rule."""
    from flask import request

    path = request.path
    if USER_LIST.search(path):
        return None if _is_admin() else _forbidden("only an admin lists every user and their permissions")
    if request.method not in ("POST", "DELETE", "PATCH") or not (
        ALIAS.search(path) or RENAME.search(path) or VERSION_TAG.search(path)
    ):
        return None
    params = parameters(request)  # exactly what MLflow's handler will read
    if VERSION_TAG.search(path):
        return _version_tag_rule(
            str(params.get("name", "")), str(params.get("version", "")), params.get("key")
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


def _version_tag_rule(name: str, version: str, key):
    key = str(key)
    if is_sealed(key):
        return _forbidden(
            f"tag '{key}' is part of version {version}'s record (custody or evidence), written once when "
            "the version was registered: register a new version instead"
        )
    if key.startswith(GATE_PREFIX) and _decided(name, version):
        return _forbidden(
            f"tag '{key}' belongs to the gate's decision on version {version}, which is recorded with its "
            "evidence and final: register a new version to be judged again"
        )
    return None


def _decided(name: str, version: str) -> bool:
    """Does version `version` of `name` carry a gate decision with its paired comparison?"""
    from mlflow.server.handlers import _get_model_registry_store

    try:
        tags = _get_model_registry_store().get_model_version(name, version).tags
    except Exception:  # no such version: MLflow's handler answers that
        return False
    try:
        return json.loads(tags.get(DECISION_TAG, "{}")).get("comparison") is not None
    except (ValueError, AttributeError):
        return True  # a decision nobody can read is not reopened


def _is_admin() -> bool:
    from mlflow.server import auth

    return bool(auth.store.get_user(auth.authenticate_request().username).is_admin)


def _may_manage(name: str) -> bool:
    """Is the authenticated user an admin, or a MANAGE holder on registered model `name`?"""
    from mlflow.server import auth

    if _is_admin():
        return True
    try:
        return bool(auth._get_registered_model_permission(name).can_manage)
    except Exception:  # no such model: nobody but an admin
        return False


def _forbidden(message: str):
    from flask import make_response

    return make_response({"error_code": "PERMISSION_DENIED", "message": message}, 403)
