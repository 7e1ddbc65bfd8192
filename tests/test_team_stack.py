"""scripts/team_stack.py's refusals, without starting anything: a port in use and a missing
binary are errors that name the fix (the stack itself is tested in test_team_e2e)."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from visionops.stack import team as team_stack


def test_a_port_in_use_names_the_port_and_the_flag():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(team_stack.StackError) as caught:
            team_stack.check_free({"pg port": port})
    assert f"port {port} (pg port)" in str(caught.value) and "--pg-port" in str(caught.value)


def test_a_missing_binary_says_how_to_install_it():
    with pytest.raises(team_stack.StackError) as caught:
        team_stack.require("weed-that-is-not-there")
    assert "not installed" in str(caught.value) and "[server]" in str(caught.value)


def test_seaweedfs_ports_include_their_grpc_twins():
    assert team_stack.weed_ports(20000) == [20000, 20001, 20002, 20003, 30000, 30001, 30002, 30003]


def test_main_reports_a_stack_error_as_one_message(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(team_stack, "BIN", tmp_path)  # no weed, no mlflow here
    ports = ["--mlflow-port", "29871", "--pg-port", "29872", "--s3-port", "28000"]
    assert team_stack.main(["start", "--dir", str(tmp_path / "s"), *ports]) == 1
    err = capsys.readouterr().err
    assert err.startswith("team stack: error: `weed` is not installed") and "fix:" in err


def test_generated_secrets_never_look_like_an_option():
    """A secret starting with '-' (1 in 64 of token_urlsafe's) broke `dvc remote modify --local
    team secret_access_key -x2X…`: argparse took it for an option (found by first_epoch.py)."""
    from visionops.stack.team import new_secret

    made = [new_secret(30) for _ in range(2000)]
    assert not [s for s in made if s.startswith("-")] and len(set(made)) == 2000


def test_the_dvc_commands_carry_a_credentials_file_never_a_key(tmp_path):
    """Issue 47 row 20: the printed DVC commands put the S3 secret on a command line."""
    from visionops.stack.team import credentials_file, dvc_remote_commands

    path = credentials_file(tmp_path, "dvc", "vdKEY", "the-secret-itself")
    lines = dvc_remote_commands({"s3": 1}, path)
    assert not [line for line in lines if "vdKEY" in line or "the-secret-itself" in line]
    assert f"credentialpath {path}" in lines[2]
    assert path.read_text().endswith("aws_secret_access_key = the-secret-itself\n")
    assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


def test_each_s3_key_reaches_its_own_bucket_only(tmp_path):
    """Issue 47 row 6: DVC's key was the store's admin identity. Now only the stack's own setup
    holds that one; MLflow's server, the team's DVC key and each person's are scoped."""
    from visionops.stack.team import SECRETS, s3_identities, write_s3_config

    secret = {name: make() for name, make in SECRETS.items()}
    people = {"alice": {"access": "vpA", "secret": "sA", "read_only": False},
              "bob": {"access": "vpB", "secret": "sB", "read_only": True}}  # fmt: skip
    found = {i["name"]: i["actions"] for i in s3_identities(secret, people)}
    assert found == {
        "stack-admin": ["Admin", "Read", "Write", "List", "Tagging"],
        "mlflow-server": ["Read:mlflow", "Write:mlflow", "List:mlflow", "Tagging:mlflow"],
        "dvc": ["Read:dvc", "Write:dvc", "List:dvc", "Tagging:dvc"],
        "dvc-alice": ["Read:dvc", "Write:dvc", "List:dvc", "Tagging:dvc"],
        "dvc-bob": ["Read:dvc", "List:dvc"],
    }
    (tmp_path / "s3").mkdir()
    config = write_s3_config(tmp_path, secret, people)
    assert json.loads(config.read_text())["identities"][3]["credentials"] == [
        {"accessKey": "vpA", "secretKey": "sA"}
    ]
    assert config.stat().st_mode & 0o077 == 0 and (tmp_path / "s3/people.json").stat().st_mode & 0o077 == 0


def test_a_state_folder_from_an_older_stack_gains_the_new_secrets_and_keeps_its_own(tmp_path):
    from visionops.stack.team import SECRETS, load_secrets

    older = {name: f"old-{name}" for name in SECRETS if name != "tuner_password"}
    (tmp_path / "secrets.json").write_text(json.dumps(older))
    loaded = load_secrets(tmp_path)
    assert {k: loaded[k] for k in older} == older and len(loaded["tuner_password"]) >= 20
    assert load_secrets(tmp_path) == loaded  # saved: the next start reads the same


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["grant", "admin"], "'admin' is the stack's administrator"),
        (["grant", "carol", "--password", "short"], "has 5 characters (at least 12)"),
        (["grant", "carol"], "no team stack in"),
    ],
)
def test_grant_refusals_name_the_cause_and_the_fix(capsys, tmp_path, argv, expected):
    """Issue 32: these were a raw FileNotFoundError or MLflow's RestException."""
    assert team_stack.main([*argv, "--dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("team stack: error: ") and expected in err and "fix:" in err


def test_stop_finds_a_stack_whose_state_folder_was_deleted(capsys, tmp_path):
    """Issue 32: with the folder (and its pid files) gone, `stop` said "stopped" and left every
    service listening. Each service's environment names its state folder: stop finds it there."""
    import shutil
    import threading

    state = (tmp_path / ".server").resolve()
    (state / "s3").mkdir(parents=True)
    service = team_stack.spawn([sys.executable, "-c", "import time; time.sleep(120)"], state / "s3/x.log",
                               state / "s3/weed.pid")  # fmt: skip
    threading.Thread(target=service.wait, daemon=True).start()  # reaped as soon as it ends
    shutil.rmtree(state)
    assert team_stack.main(["stop", "--dir", str(state)]) == 0
    assert "no pid file" in capsys.readouterr().out
    assert service.wait(timeout=30) is not None
    assert team_stack.main(["stop", "--dir", str(state)]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_the_seaweedfs_security_file_closes_every_port_but_s3_and_is_private(tmp_path):
    """mTLS on the master, volume and filer HTTP and every gRPC port, JWT keys for reads and
    writes; made once (the same keys and certificates on a restart), readable by the owner only."""
    import tomllib

    from visionops.stack.seaweed_security import write_security_config

    path = write_security_config(tmp_path)
    config = tomllib.loads(path.read_text())
    for server in ("master", "volume", "filer"):
        assert config["https"][server]["ca"] and config["https"][server]["cert"]
    assert config["https"]["client"]["enabled"] and set(config["grpc"]) >= {
        "ca",
        "master",
        "volume",
        "filer",
        "s3",
        "client",
    }
    keys = [config["jwt"]["signing"]["key"], config["jwt"]["signing"]["read"]["key"],
            config["jwt"]["filer_signing"]["key"], config["jwt"]["filer_signing"]["read"]["key"]]  # fmt: skip
    assert len(set(keys)) == 4 and all(len(key) == 64 for key in keys)
    assert write_security_config(tmp_path).read_text() == path.read_text()
    for private in (path, tmp_path / "tls/node.key", tmp_path / "jwt.keys"):
        assert private.stat().st_mode & 0o077 == 0, private
