"""One reading of a request to the MLflow server: refuse what MLflow's permission check and its
handler would read differently.

MLflow's handlers read a GET's parameters from the query string and every other method's from
the JSON body (whatever the Content-Type, and a double-encoded JSON string decoded twice). Its
basic-auth check reads a DELETE's query when the body is not declared JSON, and the upload route's
`run_id` where the handler reads `run_uuid`. Each split is a door: the check approves one model
or run, the handler changes another. So, before any check runs, an API request must carry its
parameters in exactly one place, once:

* POST, PUT, PATCH, DELETE: no query string; a body that is empty or a JSON object declared as
  JSON, with no key twice at any depth and no key that the URL's path also names;
* GET: no body, and no field of the route's request message that is not a list given twice;
* the artifact upload route (raw bytes in the body, its parameters in the query): `run_uuid`
  and `path` once each, and no `run_id` (the check would read it, the handler ignores it).

`parameters(request)` is then the one reading: what both sides see.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

API_PREFIXES = ("/api/", "/ajax-api/")
ARTIFACT_PROXY = "/mlflow-artifacts/"  # raw bodies, parameters in the path
UPLOAD = re.compile(r"/mlflow/upload-artifact$")  # raw body, parameters in the query
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class Ambiguous(ValueError):
    """A request that MLflow's permission check and its handler could read differently."""


def check(request) -> None:
    """Raise Ambiguous naming what to change; None when the request has one reading."""
    path = request.path
    if not path.startswith(API_PREFIXES):
        return
    if ARTIFACT_PROXY in path:
        _no_repeated_query_keys(request, lists=frozenset())
    elif UPLOAD.search(path):
        _upload_query(request)
    elif request.method in WRITES:
        _body_only(request)
    else:
        if request.get_data(cache=True):
            raise Ambiguous(
                f"a {request.method} request carries a body, which MLflow reads when the query is "
                "empty and its permission check never does: send the parameters in the query only"
            )
        _no_repeated_query_keys(request, lists=repeated_fields(path))


def parameters(request) -> dict[str, Any]:
    """The request's parameters as MLflow's handler reads them (after `check` passed): the query
    for GET (first value of each key), else the JSON body."""
    if request.method not in WRITES:
        return request.args.to_dict()
    data = request.get_data(cache=True)
    return strict_json(data) if data else {}


def strict_json(data: bytes) -> dict[str, Any]:
    """A JSON object with no key twice at any depth; Ambiguous otherwise."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise Ambiguous(
                f"the JSON body gives {', '.join(map(repr, twice))} more than once: readers differ on "
                "which one counts; send each key once"
            )
        return dict(items)

    try:
        body = json.loads(data, object_pairs_hook=pairs)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, Ambiguous):
            raise
        raise Ambiguous(f"the body is not JSON ({exc}): send a JSON object") from None
    if not isinstance(body, dict):
        raise Ambiguous(
            f"the JSON body is a {type(body).__name__}, not an object (MLflow decodes a JSON string a "
            "second time; its permission check does not): send the parameters as a JSON object"
        )
    return body


def _body_only(request) -> None:
    if request.query_string:
        raise Ambiguous(
            f"a {request.method} request to the MLflow API carries a query string "
            f"(?{request.query_string.decode('latin-1')[:80]}): MLflow's handler reads only the JSON "
            "body, so the query would be read by the permission check alone; send every parameter "
            "in the JSON body"
        )
    data = request.get_data(cache=True)
    if not data:
        return
    if not request.is_json:
        raise Ambiguous(
            f"the body is sent as {request.mimetype or 'no content type'}: MLflow's handler reads it as "
            "JSON whatever its type, its permission check does not; send it with Content-Type: "
            "application/json"
        )
    body = strict_json(data)
    named = {key for key, value in (request.view_args or {}).items() if key in body and body[key] != value}
    if named:
        raise Ambiguous(
            f"the path and the body name different {', '.join(sorted(named))}: send it in the path only"
        )


def _upload_query(request) -> None:
    _no_repeated_query_keys(request, lists=frozenset())
    if "run_id" in request.args:
        raise Ambiguous(
            "upload-artifact reads the run from `run_uuid`; MLflow's permission check reads `run_id` "
            "first: pass the run as run_uuid only"
        )


def _no_repeated_query_keys(request, lists: frozenset[str]) -> None:
    twice = sorted(key for key, values in request.args.lists() if len(values) > 1 and key not in lists)
    if twice:
        raise Ambiguous(
            f"the query gives {', '.join(map(repr, twice))} more than once: send each parameter once"
        )


@cache
def repeated_fields(path: str) -> frozenset[str]:
    """The list fields of the request message MLflow parses for `path` (a query may repeat
    those); for a route without one, the query keys that MLflow's own GET routes repeat."""
    return _message_lists().get(path, frozenset({"run_id", "run_ids", "experiment_ids", "trace_ids"}))


@cache
def _message_lists() -> dict[str, frozenset[str]]:
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.protos.service_pb2 import MlflowService
    from mlflow.server.handlers import get_service_endpoints

    found = {}
    for service in (MlflowService, ModelRegistryService):
        for path, message, _ in get_service_endpoints(service, lambda message: message):
            fields = message.DESCRIPTOR.fields
            found[path] = frozenset(f.name for f in fields if _is_list(f))
    return found


def _is_list(field) -> bool:
    try:
        return bool(field.is_repeated)
    except AttributeError:  # older protobuf
        return field.label == field.LABEL_REPEATED
