"""scripts/team_stack.py's refusals, without starting anything: a port in use and a missing
binary are errors that name the fix (the stack itself is tested in test_team_e2e)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import team_stack


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
    from team_stack import dvc_remote_commands, new_secret

    made = [new_secret(30) for _ in range(2000)]
    assert not [s for s in made if s.startswith("-")] and len(set(made)) == 2000
    line = dvc_remote_commands({"s3": 1}, {"s3_access_key": "vo1", "s3_secret_key": made[0]})[-1]
    assert line.split()[-1] == made[0]


def test_a_state_folder_from_an_older_stack_gains_the_new_secrets_and_keeps_its_own(tmp_path):
    from team_stack import SECRETS, load_secrets

    older = {name: f"old-{name}" for name in SECRETS if name != "tuner_password"}
    (tmp_path / "secrets.json").write_text(json.dumps(older))
    loaded = load_secrets(tmp_path)
    assert {k: loaded[k] for k in older} == older and len(loaded["tuner_password"]) >= 20
    assert load_secrets(tmp_path) == loaded  # saved: the next start reads the same
