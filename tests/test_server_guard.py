"""Issue 47: the team server's guard (tracking/server_guard.py, request_reading.py) on a real
`mlflow server --app-name visionops-auth` (SQLite stores, MLflow's basic-auth, one server for the
module). Every API route of the server is probed with the requests that MLflow's permission check
and its handler read differently, and the round-five attacks are re-tried as the users who made
them: an editor, a read-only user, the gate's identity and the admin."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import mlflow_server
import pytest
import requests

from visionops.stack.processes import free_port

pytestmark = pytest.mark.slow

MODEL, OWN = "team-model", "viewer-own-model"
ADMIN = ("admin", "admin-password-for-tests-1")
USERS = {  # name: (password, permission on the team's model and experiment)
    "editor": ("editor-password-22", "EDIT"),
    "viewer": ("viewer-password-22", "READ"),
    "gate": ("gate-password-22", "MANAGE"),
}
CUSTODY = {"files.sha256": "a" * 64, "files.manifest": "runs:/x/custody/m.json", "onnx.sha256": "b" * 64}
EVIDENCE = {"run_id": "r", "validation.success": "true", "export.parity": "true", "metric.accuracy": "0.99"}
DECIDED = {"comparison": {"p_value": 0.001, "n": 360}, "promote": True, "reasons": ["beats"]}


@dataclass
class Guarded:
    url: str
    versions: dict[str, str] = field(default_factory=dict)  # what: version number

    def call(self, user: str, method: str, route: str, **kwargs) -> requests.Response:
        login = ADMIN if user == "admin" else (user, USERS[user][0])
        return requests.request(method, f"{self.url}{route}", auth=login, timeout=30, **kwargs)

    def ok(self, user: str, method: str, route: str, **kwargs) -> dict:
        answer = self.call(user, method, route, **kwargs)
        assert answer.status_code == 200, (route, answer.status_code, answer.text[:300])
        return answer.json()

    def version(self, number: str) -> dict:
        query = {"name": MODEL, "version": number}
        return self.ok("admin", "GET", "/api/2.0/mlflow/model-versions/get", params=query)["model_version"]

    def tags(self, number: str) -> dict[str, str]:
        return {t["key"]: t["value"] for t in self.version(number).get("tags", [])}

    def champion(self) -> str:
        found = self.ok(
            "admin",
            "GET",
            "/api/2.0/mlflow/registered-models/alias",
            params={"name": MODEL, "alias": "champion"},
        )
        return found["model_version"]["version"]

    def models(self) -> set[str]:
        found = self.ok(
            "admin", "GET", "/api/2.0/mlflow/registered-models/search", params={"max_results": 100}
        )
        return {m["name"] for m in found.get("registered_models", [])}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Guarded:
    store = tmp_path_factory.mktemp("guarded")
    (store / "basic_auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{store / 'auth.db'}\nadmin_username = {ADMIN[0]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(store / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "guard-test-secret-key-0123456789",
    }
    port = free_port()
    server = mlflow_server.start(store, port, app_name="visionops-auth", env=env)
    try:
        yield populate(Guarded(f"http://127.0.0.1:{port}"))
    finally:
        mlflow_server.stop(server)


def populate(server: Guarded) -> Guarded:
    """The team's model (v1 champion with its record and a final decision; v2 undecided), an
    experiment with a run, three teammates, and the read-only user's own model."""
    api = "/api/2.0/mlflow"
    experiment = server.ok("admin", "POST", f"{api}/experiments/create", json={"name": "team"})[
        "experiment_id"
    ]
    run = server.ok("admin", "POST", f"{api}/runs/create", json={"experiment_id": experiment})["run"]["info"]
    server.versions["run"] = run["run_id"]
    server.ok("admin", "POST", f"{api}/registered-models/create", json={"name": MODEL})
    for number, decision in (("1", DECIDED), ("2", None)):
        tags = CUSTODY | EVIDENCE | ({"gate.decision": json.dumps(decision)} if decision else {})
        body = {"name": MODEL, "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]}
        body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        assert (
            server.ok("admin", "POST", f"{api}/model-versions/create", json=body)["model_version"]["version"]
            == number
        )
    server.ok(
        "admin",
        "POST",
        f"{api}/registered-models/alias",
        json={"name": MODEL, "alias": "champion", "version": "1"},
    )
    grant = "/api/3.0/mlflow/users/permissions/grant"
    for user, (password, permission) in USERS.items():
        server.ok("admin", "POST", f"{api}/users/create", json={"username": user, "password": password})
        for kind, resource in (("registered_model", MODEL), ("experiment", experiment)):
            body = {
                "username": user,
                "resource_type": kind,
                "resource_id": resource,
                "permission": permission,
            }
            server.ok("admin", "POST", grant, json=body)
    server.ok("admin", "POST", f"{api}/registered-models/create", json={"name": OWN})
    body = {
        "username": "viewer",
        "resource_type": "registered_model",
        "resource_id": OWN,
        "permission": "MANAGE",
    }
    server.ok("admin", "POST", grant, json=body)
    return server


# --- every route: one reading or a refusal ------------------------------------------------------


def api_routes() -> list[tuple[str, str]]:
    """(method, path) of every API route MLflow's app and its basic-auth app serve, path
    parameters filled in."""
    import mlflow.server
    from mlflow.server.auth import _RBAC_ROUTES, routes

    found = {
        (method, rule.rule)
        for rule in mlflow.server.app.url_map.iter_rules()
        if rule.rule.startswith(("/api/", "/ajax-api/"))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    found |= {(method, path) for _, method, *paths in _RBAC_ROUTES for path in paths}
    users = {"CREATE": "POST", "GET": "GET", "LIST": "GET", "UPDATE": "PATCH", "DELETE": "DELETE"}
    for name, value in vars(routes).items():
        if isinstance(value, str) and "/users/" in value and value.startswith(("/api/", "/ajax-api/")):
            verb = name.removeprefix("AJAX_").split("_")[0]
            found |= {(users[verb], value)} if verb in users else set()
    import re

    return sorted((method, re.sub(r"<(?:\w+:)?\w+>", "x1", path)) for method, path in found)


WRITES = ("POST", "PUT", "PATCH", "DELETE")
AMBIGUOUS_WRITES = {  # what a split reader would make of it
    "query beside the body": {"params": {"name": OWN}, "json": {"name": MODEL}},
    "text/plain body": {"data": json.dumps({"name": MODEL}), "headers": {"Content-Type": "text/plain"}},
    "form body": {"data": {"name": MODEL}},
    "no content type": {"data": json.dumps({"name": MODEL}).encode(), "headers": {"Content-Type": ""}},
    "a key twice": {
        "data": f'{{"name": "{OWN}", "name": "{MODEL}"}}',
        "headers": {"Content-Type": "application/json"},
    },
    "a key twice, nested": {
        "data": '{"name": "m", "tags": [{"key": "a", "key": "b", "value": "v"}]}',
        "headers": {"Content-Type": "application/json"},
    },
    "double-encoded JSON": {"json": json.dumps({"name": MODEL})},
}


def test_every_write_route_refuses_what_mlflow_would_read_two_ways(guarded):
    """Refused before MLflow's permission check: the viewer's request never reaches it, so a
    split reading cannot pass the check on one name and act on another."""
    routes = [(m, p) for m, p in api_routes() if m in WRITES and "mlflow-artifacts" not in p]
    assert len(routes) > 200, len(routes)  # the whole REST surface, not a sample
    wrong = []
    for method, path in routes:
        if path.endswith("/upload-artifact"):
            continue  # raw bytes in the body by design: its own test below
        for what, request in AMBIGUOUS_WRITES.items():
            answer = guarded.call("viewer", method, path, **request)
            if answer.status_code != 400 or "refused:" not in answer.text:
                wrong.append((method, path, what, answer.status_code, answer.text[:120]))
    assert not wrong, wrong[:10]
    assert guarded.models() >= {MODEL, OWN} and guarded.champion() == "1"


def test_every_read_route_refuses_a_body_and_a_repeated_single_field(guarded):
    native = ("mlflow-artifacts", "/server-info")  # served by FastAPI itself: public, or the proxy's own test
    routes = [(m, p) for m, p in api_routes() if m == "GET" and not any(n in p for n in native)]
    assert len(routes) > 100, len(routes)
    wrong = [
        (path, answer.status_code)
        for method, path in routes
        if (
            answer := guarded.call("viewer", method, path, params={"name": OWN}, json={"name": MODEL})
        ).status_code
        != 400
    ]
    assert not wrong, wrong[:10]
    twice = guarded.call(
        "viewer", "GET", "/api/2.0/mlflow/registered-models/get", params=[("name", OWN), ("name", MODEL)]
    )
    assert twice.status_code == 400 and "'name' more than once" in twice.text, twice.text
    listed = [("experiment_ids", "0"), ("experiment_ids", "1"), ("max_results", "1")]
    assert (
        guarded.call("viewer", "GET", "/api/2.0/mlflow/runs/search", params=listed).status_code != 400
    )  # a list field


def test_the_upload_route_reads_the_run_one_way(guarded):
    """MLflow's check reads `run_id` first, the handler only `run_uuid`."""
    upload = "/ajax-api/2.0/mlflow/upload-artifact"
    query = {"run_id": "someone-elses", "run_uuid": guarded.versions["run"], "path": "x.txt"}
    answer = guarded.call("viewer", "POST", upload, params=query, data=b"payload")
    assert answer.status_code == 400 and "run_uuid only" in answer.text, answer.text
    twice = [("run_uuid", guarded.versions["run"]), ("run_uuid", "other"), ("path", "x.txt")]
    assert guarded.call("editor", "POST", upload, params=twice, data=b"x").status_code == 400


# --- the round-five attacks, as the users who made them ----------------------------------------


def test_row_1_a_harmless_query_argument_no_longer_carries_a_champion_move_past_the_guard(guarded):
    for query in ({"alias": "x"}, {"key": "note"}, {"name": OWN}):
        move = {"name": MODEL, "alias": "champion", "version": "2"}
        answer = guarded.call(
            "editor", "POST", "/api/2.0/mlflow/registered-models/alias", params=query, json=move
        )
        assert answer.status_code == 400, (query, answer.text)
    seal = {"name": MODEL, "version": "1", "key": "files.sha256", "value": "0" * 64}
    route = "/api/2.0/mlflow/model-versions/set-tag"
    assert guarded.call("editor", "POST", route, params={"key": "note"}, json=seal).status_code == 400
    rename = {"name": MODEL, "new_name": "taken-over"}
    route = "/api/2.0/mlflow/registered-models/rename"
    assert guarded.call("editor", "POST", route, params={"name": OWN}, json=rename).status_code == 400
    # and said plainly, the same moves are MLflow-readable and refused by the rules
    assert (
        guarded.call("editor", "POST", "/api/2.0/mlflow/registered-models/alias", json=move).status_code
        == 403
    )
    assert (
        guarded.call("editor", "POST", "/api/2.0/mlflow/model-versions/set-tag", json=seal).status_code == 403
    )
    assert (
        guarded.call("editor", "POST", "/api/2.0/mlflow/registered-models/rename", json=rename).status_code
        == 403
    )
    assert (
        guarded.champion() == "1"
        and guarded.tags("1")["files.sha256"] == "a" * 64
        and MODEL in guarded.models()
    )


def test_row_3_a_read_only_user_deletes_nothing_of_the_teams_by_naming_their_own_in_the_query(guarded):
    plain = {"Content-Type": "text/plain"}
    attempts = [
        ("/api/2.0/mlflow/model-versions/delete-tag", {"name": MODEL, "version": "1", "key": "onnx.sha256"}),
        ("/api/2.0/mlflow/registered-models/alias", {"name": MODEL, "alias": "champion"}),
        ("/api/2.0/mlflow/model-versions/delete", {"name": MODEL, "version": "2"}),
        ("/api/2.0/mlflow/registered-models/delete", {"name": MODEL}),
    ]
    for route, body in attempts:
        split = guarded.call(
            "viewer", "DELETE", route, params=body | {"name": OWN}, data=json.dumps(body), headers=plain
        )
        assert split.status_code == 400, (route, split.status_code, split.text)
        direct = guarded.call("viewer", "DELETE", route, json=body)  # one reading: MLflow refuses it
        assert direct.status_code == 403, (route, direct.status_code)
    assert MODEL in guarded.models() and guarded.champion() == "1"
    assert guarded.tags("1")["onnx.sha256"] == "b" * 64 and guarded.version("2")["version"] == "2"


def test_row_18_only_an_admin_lists_every_user(guarded):
    for user in ("viewer", "editor", "gate"):
        assert guarded.call(user, "GET", "/api/2.0/mlflow/users/list").status_code == 403
    listed = guarded.ok("admin", "GET", "/api/2.0/mlflow/users/list")
    assert {u["username"] for u in listed["users"]} >= set(USERS)
    assert guarded.ok("viewer", "GET", "/api/2.0/mlflow/users/current")  # one's own record stays readable


@pytest.mark.parametrize(
    "key", ["validation.success", "metric.accuracy", "run_id", "export.parity", "onnx.sha256"]
)
def test_row_19_the_evidence_a_version_was_registered_with_is_sealed_for_everyone(guarded, key):
    for user in ("editor", "gate", "admin"):
        body = {"name": MODEL, "version": "2", "key": key, "value": "forged"}
        assert (
            guarded.call(user, "POST", "/api/2.0/mlflow/model-versions/set-tag", json=body).status_code == 403
        )
        assert (
            guarded.call(user, "DELETE", "/api/2.0/mlflow/model-versions/delete-tag", json=body).status_code
            == 403
        )
    assert guarded.tags("2")[key] == (CUSTODY | EVIDENCE)[key]


def test_row_19_the_gates_decision_is_final_once_recorded_with_its_comparison(guarded):
    route = "/api/2.0/mlflow/model-versions/set-tag"
    for user in ("editor", "admin"):
        forged = {"name": MODEL, "version": "1", "key": "gate.p_value", "value": "0.0"}
        assert guarded.call(user, "POST", route, json=forged).status_code == 403
    # an undecided version (register deferred: MLflow was unreachable) is decided later, once
    for key, value in (("gate.p_value", "0.01"), ("gate.decision", json.dumps(DECIDED))):
        assert guarded.call(
            "editor", "POST", route, json={"name": MODEL, "version": "2", "key": key, "value": value}
        ).ok
    again = {"name": MODEL, "version": "2", "key": "gate.promoted", "value": "true"}
    assert guarded.call("editor", "POST", route, json=again).status_code == 403
    note = {"name": MODEL, "version": "2", "key": "reviewed-by", "value": "editor"}  # any other tag: EDIT
    assert (
        guarded.call("editor", "POST", route, json=note).ok and guarded.tags("2")["reviewed-by"] == "editor"
    )


def test_the_gate_still_moves_champion_and_mlflows_own_client_still_works(guarded, monkeypatch):
    """The refusals above cost MLflow's own clients nothing: they send one JSON body."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "gate")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["gate"][0])
    client = mlflow.MlflowClient(guarded.url, registry_uri=guarded.url)
    client.set_registered_model_alias(MODEL, "champion", "2")
    assert guarded.champion() == "2"
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.delete_registered_model_alias(MODEL, "candidate") if "candidate" in client.get_registered_model(
        MODEL
    ).aliases else None
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "editor")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["editor"][0])
    client.set_registered_model_alias(MODEL, "candidate", "2")
    assert client.get_model_version_by_alias(MODEL, "candidate").version == "2"
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"PERMISSION_DENIED|403"):
        client.set_registered_model_alias(MODEL, "champion", "2")
    assert {m.name for m in client.search_registered_models()} >= {MODEL}
    assert client.get_run(guarded.versions["run"]).info.status
