"""The team's stack on 127.0.0.1, as a team runs it in production: PostgreSQL (MLflow's
runs, registry and logins; `visionops tune` studies, under a role of their own), an S3 object
store (SeaweedFS: MLflow's artifacts and the DVC remote) and `mlflow server` with the
visionops-auth app (MLflow's basic-auth plus the registry rules) and proxied artifacts
(clients hold MLflow logins only, never S3 keys for artifacts).

    python scripts/team_stack.py start [--dir .server] [--mlflow-port 5000] [--pg-port 5433] [--s3-port 8333]
    python scripts/team_stack.py stop  [--dir .server] [--purge]
    python scripts/team_stack.py grant USER [--password P] [--read-only | --gate]   (as the admin)

State (data, logs, pids, generated secrets, the object store's certificates and keys) lives in
--dir (git-ignored, 0700). `start` waits until every service answers, then prints what a teammate
exports (also in --dir/team.env) and the `dvc remote` commands with the team's DVC key (a
credentials file, never a command-line argument); the admin's login stays in --dir/admin.env.
S3 keys are least-privilege: the store's admin key never leaves the stack, MLflow's server has its
bucket, DVC (and each person `grant` makes) the remote's bucket. A port in use or a
missing binary is an error with the fix. Starting again reuses the data and secrets and
starts only what is not running. Logins: MLflow's default permission is READ; `grant` creates
a teammate's login with EDIT on the experiment and the registered model (--read-only: READ on
both; --gate: MANAGE on the model, which moves @champion) and their own DVC key.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from visionops.stack.processes import StackError, answers, is_free, stop_group, tail, wait_until

ROOT = Path.cwd()  # the project: `make server` and scripts/team_stack.py run from its root
BIN = Path(sys.executable).parent
MLFLOW_BUCKET, DVC_BUCKET = "mlflow", "dvc"
ADMIN = "admin"
INSTALL_SERVER = f"{BIN / 'pip'} install -e '.[server]' from the project's folder (or: make server)"


# --- ports, binaries, secrets ----------------------------------------------------------


def weed_ports(s3: int) -> list[int]:
    """SeaweedFS's S3, master, volume and filer ports, and their gRPC ports (+10000)."""
    http = [s3, s3 + 1, s3 + 2, s3 + 3]
    return http + [p + 10000 for p in http]


def port_flags(ports: dict[str, int]) -> list[str]:
    """`start`'s port arguments for `ports` (free_stack_ports' keys)."""
    return [
        "--mlflow-port",
        str(ports["mlflow"]),
        "--pg-port",
        str(ports["pg"]),
        "--s3-port",
        str(ports["s3"]),
    ]


def free_stack_ports() -> dict[str, int]:
    """Random free ports for a whole stack (tests, benchmarks): SeaweedFS needs four in a row
    and their +10000 gRPC twins."""
    import random

    while True:
        s3, mlflow, pg = (
            random.randrange(20000, 29000, 10),
            random.randrange(30000, 40000),
            random.randrange(40000, 50000),
        )
        if all(map(is_free, [*weed_ports(s3), mlflow, pg])):
            return {"mlflow": mlflow, "pg": pg, "s3": s3}


def check_free(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        if not is_free(port):
            raise StackError(
                f"port {port} ({name}) on 127.0.0.1 is in use",
                f"stop what listens there (`make server-stop` if it is an earlier stack) or "
                f"choose other ports (--{name.split()[0]}-port)",
            )


def postgres_bin() -> Path:
    """Debian's PostgreSQL server binaries, installed with apt when missing (root only)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        print("team stack: installing PostgreSQL (apt-get install postgresql)")
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=False, capture_output=True)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise StackError(
            "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin)",
            "sudo apt-get install postgresql (Debian/Ubuntu), then run this again",
        )
    return found[-1].parent


def require(binary: str) -> str:
    path = BIN / binary
    if not path.exists():
        raise StackError(f"`{binary}` is not installed in {BIN}", INSTALL_SERVER)
    return str(path)


SECRETS = {  # generated once per state folder, never a default
    "pg_password": lambda: new_secret(18),  # MLflow's role (owns MLflow's two databases, nothing more)
    "pg_superuser_password": lambda: new_secret(24),  # PostgreSQL's `postgres`: the stack's own setup only
    "s3_access_key": lambda: "vo" + secrets.token_hex(9),  # the store's admin: the stack's own setup only
    "s3_secret_key": lambda: new_secret(30),
    "mlflow_s3_access_key": lambda: "vm" + secrets.token_hex(9),  # MLflow's server: its bucket only
    "mlflow_s3_secret_key": lambda: new_secret(30),
    "dvc_s3_access_key": lambda: "vd" + secrets.token_hex(9),  # the team's DVC remote (CI): its bucket only
    "dvc_s3_secret_key": lambda: new_secret(30),
    "admin_password": lambda: new_secret(18),  # MLflow's admin login
    "flask_secret_key": lambda: new_secret(32),  # CSRF protection of the auth app
    "tuner_password": lambda: new_secret(18),  # the `tuner` role: Optuna studies only
}


def load_secrets(state: Path) -> dict[str, str]:
    """The state folder's secrets; any missing one (a folder from an older stack) is generated
    and saved beside the others."""
    path = state / "secrets.json"
    values = json.loads(path.read_text()) if path.is_file() else {}
    missing = {name: make() for name, make in SECRETS.items() if name not in values}
    if missing:
        values |= missing
        path.touch(mode=0o600)
        path.write_text(json.dumps(values, indent=2))
    return values


STACK_ENV = "VISIONOPS_STACK"  # every service's environment names its state folder: `stop` finds them


def spawn(command: list[str], log: Path, pidfile: Path, env: dict[str, str] | None = None):
    """A service in its own session (stopped by process group), its output in `log`, the files
    it makes readable by its owner only (umask 077)."""
    env = (env or dict(os.environ)) | {STACK_ENV: str(log.parent.parent)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=log.parent,
            umask=0o077,
        )
    pidfile.write_text(str(proc.pid))
    return proc


# --- the three services ----------------------------------------------------------------


def as_postgres() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` system user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def pg_folder(state: Path) -> Path:
    """The cluster's folder: in the state folder when the `postgres` user can reach it, else
    under that user's home (a project under /root, or pytest's temporary folders, are not)."""
    folder = state / "postgres"
    prefix = as_postgres()
    if not prefix or subprocess.run([*prefix, "test", "-x", str(state)], capture_output=True).returncode == 0:
        return folder
    return Path("/var/lib/postgresql/visionops") / hashlib.sha256(str(state).encode()).hexdigest()[:16]


def start_postgres(state: Path, port: int, secret: dict[str, str]) -> None:
    """A cluster owned by the `postgres` system user, with password logins: the `mlflow` role
    owns the `mlflow` (tracking, registry) and `mlflow_auth` (logins) databases; the `tuner`
    role owns `optuna` (shared `visionops tune` studies) and can reach nothing else."""
    import psycopg

    pg = postgres_bin()
    folder, as_postgres_user = pg_folder(state), as_postgres()
    data, run = folder / "data", folder / "run"
    if not (data / "PG_VERSION").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        run.mkdir(parents=True)
        pwfile = folder / "pwfile"
        pwfile.write_text(secret["pg_superuser_password"] + "\n")
        if as_postgres_user:
            shutil.chown(folder, "postgres")
            shutil.chown(run, "postgres")
            shutil.chown(pwfile, "postgres")
        pwfile.chmod(0o600)
        init = [str(pg / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256"]
        done = subprocess.run(
            [*as_postgres_user, *init, f"--pwfile={pwfile}"], capture_output=True, text=True
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stderr[-2000:]}", f"remove {folder} and try again")
    log = folder / "postgres.log"
    options = f"-p {port} -k {run} -h 127.0.0.1"
    start = [str(pg / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"]
    env = os.environ | {STACK_ENV: str(state)}
    done = subprocess.run([*as_postgres_user, *start], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise StackError(f"PostgreSQL did not start:\n{tail(log)}", f"see {log}")
    try:
        _create_databases(port, secret)
    except psycopg.OperationalError as exc:
        if "password authentication failed" not in str(exc):
            raise
        raise StackError(
            f"PostgreSQL's data in {folder} was made with other passwords than "
            f"{state / 'secrets.json'} holds (that file was removed or replaced)",
            f"put the old secrets.json back, or drop the old databases with `python "
            f"scripts/team_stack.py stop --purge --dir {state}` and start again",
        ) from None


DATABASES = {"mlflow": "mlflow", "mlflow_auth": "mlflow", "optuna": "tuner"}  # database: owner
ROLES = {"mlflow": "pg_password", "tuner": "tuner_password"}  # role: its secret


def _superuser(port: int, secret: dict[str, str]):
    """A connection as `postgres`. A cluster from before the separate superuser password had
    MLflow's: it is changed here, so MLflow's password no longer opens the whole server."""
    import psycopg
    from psycopg import sql

    login = {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres", "autocommit": True}
    try:
        return psycopg.connect(**login, password=secret["pg_superuser_password"])
    except psycopg.OperationalError as exc:
        if "password authentication failed" not in str(exc):
            raise
    db = psycopg.connect(**login, password=secret["pg_password"])
    db.execute(
        sql.SQL("alter role postgres password {}").format(sql.Literal(secret["pg_superuser_password"]))
    )
    return db


def _create_databases(port: int, secret: dict[str, str]) -> None:
    """Least privilege: the service roles log in and own their databases, and nothing more."""
    from psycopg import sql

    with _superuser(port, secret) as db:
        for role, key in ROLES.items():
            if db.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is None:
                create = sql.SQL("create role {} login password {}")
                db.execute(create.format(sql.Identifier(role), sql.Literal(secret[key])))
            limits = "alter role {} nosuperuser nocreatedb nocreaterole noreplication nobypassrls"
            db.execute(sql.SQL(limits).format(sql.Identifier(role)))
        for name, owner in DATABASES.items():
            names = sql.Identifier(name), sql.Identifier(owner)
            if db.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is None:
                db.execute(sql.SQL("create database {} owner {}").format(*names))
            else:  # a stack from before the tuner role: hand its optuna database over
                db.execute(sql.SQL("alter database {} owner to {}").format(*names))
            db.execute(sql.SQL("revoke connect on database {} from public").format(names[0]))


def start_object_store(state: Path, port: int, secret: dict[str, str]) -> None:
    """SeaweedFS with one S3 identity (so keys mean something) and the two buckets; its master,
    volume and filer ports (and every gRPC port) take only the stack's own certificate
    (stack/seaweed_security.py), so the S3 keys guard the only open door."""
    from visionops.stack.seaweed_security import write_security_config

    weed = require("weed")
    folder = state / "s3"
    for private in (folder, folder / "data"):  # 0700, also when an older stack made them
        private.mkdir(exist_ok=True, mode=0o700)
        private.chmod(0o700)
    write_security_config(folder)
    write_master_config(folder)
    config = write_s3_config(state, secret)
    s3, master, volume, filer = weed_ports(port)[:4]
    command = [
        weed,
        f"-config_dir={folder}",  # security.toml
        "server",
        f"-dir={folder / 'data'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.config={config}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-volume.max=0",  # as many volumes as the free disk holds...
        "-master.volumeSizeLimitMB=1024",  # ...of 1 GB each (the 30 GB default leaves too few)
        "-volume.preStopSeconds=0",  # one node: no other volume server to hand writes to on stop
        "-s3.port.iceberg=0",  # SeaweedFS's table catalogs: not needed, and on fixed ports
        "-s3.port.lance=0",
    ]
    log = folder / "weed.log"
    proc = spawn(command, log, folder / "weed.pid")
    client = s3_client(port, secret)

    def ready() -> bool:
        """Buckets made, and an object written, read and removed in each: the S3 gateway
        lists buckets before its volume server takes writes."""
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in {MLFLOW_BUCKET, DVC_BUCKET} - have:
            client.create_bucket(Bucket=bucket)
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            client.put_object(Bucket=bucket, Key=".probe", Body=b"ok")
            client.head_object(Bucket=bucket, Key=".probe")
            client.delete_object(Bucket=bucket, Key=".probe")
        return True

    wait_until(ready, "SeaweedFS (S3)", log, proc=proc)


BUCKET_ACTIONS = ("Read", "Write", "List", "Tagging")


def s3_identities(secret: dict[str, str], people: dict[str, dict]) -> list[dict]:
    """Least privilege: the store's admin key (the stack's own setup, never handed out), MLflow's
    server on its bucket, the team's DVC key on the remote's bucket, and one DVC key per person
    (`grant`: read-only people may read and list only)."""

    def identity(name: str, key: str, secret_key: str, actions: list[str]) -> dict:
        return {
            "name": name,
            "credentials": [{"accessKey": key, "secretKey": secret_key}],
            "actions": actions,
        }

    def on(bucket: str, actions=BUCKET_ACTIONS) -> list[str]:
        return [f"{action}:{bucket}" for action in actions]

    found = [
        identity("stack-admin", secret["s3_access_key"], secret["s3_secret_key"], ["Admin", *BUCKET_ACTIONS]),
        identity(
            "mlflow-server", secret["mlflow_s3_access_key"], secret["mlflow_s3_secret_key"], on(MLFLOW_BUCKET)
        ),
        identity("dvc", secret["dvc_s3_access_key"], secret["dvc_s3_secret_key"], on(DVC_BUCKET)),
    ]
    for person, key in sorted(people.items()):
        actions = ("Read", "List") if key["read_only"] else BUCKET_ACTIONS
        found.append(identity(f"dvc-{person}", key["access"], key["secret"], on(DVC_BUCKET, actions)))
    return found


def s3_people(state: Path) -> dict[str, dict]:
    """Each person's DVC key, made by `grant` (state/s3/people.json, the owner's alone)."""
    path = state / "s3" / "people.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_s3_config(state: Path, secret: dict[str, str], people: dict[str, dict] | None = None) -> Path:
    """state/s3/s3.json (SeaweedFS's identities) and state/s3/people.json, both private."""
    people = s3_people(state) if people is None else people
    folder = state / "s3"
    write_private(folder / "people.json", json.dumps(people, indent=1))
    write_private(folder / "s3.json", json.dumps({"identities": s3_identities(secret, people)}, indent=1))
    return folder / "s3.json"


def credentials_file(state: Path, name: str, key: str, secret_key: str) -> Path:
    """An AWS shared-credentials file for DVC (`dvc remote modify --local team credentialpath
    FILE`), so no secret goes on a command line; state/keys/NAME.credentials, the owner's alone."""
    folder = state / "keys"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{name}.credentials"
    write_private(path, f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret_key}\n")
    return path


def write_master_config(folder: Path) -> None:
    """`folder`/master.toml: every bucket is a SeaweedFS collection, and each new collection
    reserves 7 volumes by default, so a disk with room for 20 volumes held two buckets past the
    stack's own and refused the next one's first write ("No writable volumes and no free
    volumes left"). One volume per growth; more are added as each fills."""
    (folder / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")


def s3_client(port: int, secret: dict[str, str], attempts: int = 1):
    """A client of the stack's S3 with its own keys. One attempt by default, for the readiness
    poll (its loop retries); other callers allow more, as S3 clients do by default: a 5xx
    answer ("InternalError ... please try again") is worth a retry."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=secret["s3_access_key"],
        aws_secret_access_key=secret["s3_secret_key"],
        region_name="us-east-1",
        config=Config(
            retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=2, read_timeout=10
        ),
    )


def start_mlflow(state: Path, ports: dict[str, int], secret: dict[str, str]) -> None:
    """`mlflow server` on PostgreSQL, artifacts proxied to the bucket, basic-auth logins
    (stored in PostgreSQL too) with the generated admin password."""
    mlflow = require("mlflow")
    try:
        import flask_wtf  # noqa: F401  (mlflow[auth]'s extra)
    except ImportError:
        raise StackError("MLflow's basic-auth app needs mlflow[auth]", INSTALL_SERVER) from None
    folder = state / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    db = f"postgresql://mlflow:{secret['pg_password']}@127.0.0.1:{ports['pg']}"
    auth = folder / "basic_auth.ini"
    auth.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"  # MLflow's default: writing needs a grant (`grant USER`)
        f"database_uri = {db}/mlflow_auth\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a PBKDF2 check per request otherwise: MLflow's documented ~3x (stale for <= 60 s after a
        # password change on other workers)
        "auth_cache_ttl_seconds = 60\n"
    )
    auth.chmod(0o600)
    env = os.environ | {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_AUTH_ADMIN_PASSWORD": secret["admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret["flask_secret_key"],
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": secret["mlflow_s3_access_key"],  # its bucket, nothing else
        "AWS_SECRET_ACCESS_KEY": secret["mlflow_s3_secret_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_BACKEND_STORE_URI": f"{db}/mlflow",  # the environment, never argv: `ps` shows argv
    }
    command = [
        mlflow,
        "server",
        "--app-name",
        "visionops-auth",  # basic-auth + only the gate moves @champion (tracking/server_guard.py)
        "--artifacts-destination",
        f"s3://{MLFLOW_BUCKET}/artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["mlflow"]),
        "--workers",
        "2",
    ]
    log = folder / "mlflow.log"
    proc = spawn(command, log, folder / "mlflow.pid", env)
    wait_until(
        answers(f"http://127.0.0.1:{ports['mlflow']}/health"), "mlflow server", log, timeout=180, proc=proc
    )


# --- what a teammate needs -----------------------------------------------------------------


def client_settings(ports: dict[str, int], secret: dict[str, str]) -> dict[str, str]:
    """What every teammate exports: MLflow's server and where shared studies live. Their own
    login (and DVC key) comes from `grant`; the admin's stays in admin.env."""
    optuna = f"postgresql+psycopg://tuner:{secret['tuner_password']}@127.0.0.1:{ports['pg']}/optuna"
    return {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}", "VISIONOPS_TUNE_STORAGE": optuna}


def admin_settings(ports: dict[str, int], secret: dict[str, str]) -> dict[str, str]:
    """The admin's settings: the client's and the admin login (for `grant`, never handed out)."""
    login = {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": secret["admin_password"]}
    return client_settings(ports, secret) | login


def new_secret(nbytes: int) -> str:
    """secrets.token_urlsafe, never starting with '-' (a value read as an option if one ever goes
    on a command line)."""
    while (token := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return token


def dvc_remote_commands(ports: dict[str, int], credentials: Path) -> list[str]:
    """The DVC remote for a clone: the bucket and endpoint (committed), and where its key is
    (`--local`: .dvc/config.local, never committed); the key itself stays in the file."""
    return [
        f"dvc remote add -d team s3://{DVC_BUCKET}/store",
        f"dvc remote modify team endpointurl http://127.0.0.1:{ports['s3']}",
        f"dvc remote modify --local team credentialpath {credentials}",
        "chmod 600 .dvc/config.local",  # DVC writes it world-readable
    ]


def write_private(path: Path, text: str) -> None:
    """`text` into `path`, readable by its owner only (before any byte is written)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def running(pidfile: Path) -> bool:
    """Is the service whose process group leader `pidfile` names still alive?"""
    if not pidfile.is_file():
        return False
    try:
        os.killpg(int(pidfile.read_text()), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def start(args: argparse.Namespace) -> None:
    state = args.dir.resolve()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.chmod(0o700)  # secrets, keys, the databases' files: the owner's alone
    ports_file = state / "ports.json"
    ports = {"mlflow": args.mlflow_port, "pg": args.pg_port, "s3": args.s3_port}
    if ports_file.is_file() and any(running(p) for p in state.glob("*/*.pid")):
        ports = json.loads(ports_file.read_text())  # a partly running stack keeps its ports
    up = {
        "pg": (pg_folder(state) / "data/postmaster.pid").is_file(),
        "s3": running(state / "s3/weed.pid"),
        "mlflow": running(state / "mlflow/mlflow.pid"),
    }
    wanted = {"mlflow port": ports["mlflow"]} if not up["mlflow"] else {}
    wanted |= {"pg port": ports["pg"]} if not up["pg"] else {}
    if not up["s3"]:
        wanted |= {f"s3 port (+{p - ports['s3']})": p for p in weed_ports(ports["s3"])}
    check_free(wanted)
    require("weed")
    require("mlflow")
    secret = load_secrets(state)
    ports_file.write_text(json.dumps(ports))
    steps = [
        ("pg", f"PostgreSQL on 127.0.0.1:{ports['pg']}", lambda: start_postgres(state, ports["pg"], secret)),
        (
            "s3",
            f"S3 (SeaweedFS) on 127.0.0.1:{ports['s3']}",
            lambda: start_object_store(state, ports["s3"], secret),
        ),
        (
            "mlflow",
            f"mlflow server on 127.0.0.1:{ports['mlflow']}",
            lambda: start_mlflow(state, ports, secret),
        ),
    ]
    for key, what, begin in steps:
        print(f"team stack: {what}{' (already running)' if up[key] else ' ...'}", flush=True)
        if not up[key]:
            begin()
    settings = client_settings(ports, secret)
    env_file, admin_file = state / "team.env", state / "admin.env"
    write_private(env_file, "".join(f"export {k}={v}\n" for k, v in settings.items()))
    write_private(admin_file, "".join(f"export {k}={v}\n" for k, v in admin_settings(ports, secret).items()))
    dvc_key = credentials_file(state, "dvc", secret["dvc_s3_access_key"], secret["dvc_s3_secret_key"])
    print("\nThe team stack is up. A teammate (or CI) exports:\n")
    print("".join(f"  export {k}={v}\n" for k, v in settings.items()))
    print(
        "with a login of their own, which the admin makes: `python scripts/team_stack.py grant NAME` "
        "(CI's, which moves @champion: `grant ci --gate`; a reader's: `--read-only`). It prints the "
        "login and the person's own DVC key.\n"
    )
    print("The DVC remote, once per clone (the team's DVC key, its bucket only; CI's):\n")
    print("".join(f"  {line}\n" for line in dvc_remote_commands(ports, dvc_key)))
    print(
        f"(settings in {env_file}; the admin's login in {admin_file}, for the admin alone; secrets in "
        f"{state / 'secrets.json'}; stop with `make server-stop`)"
    )


MIN_PASSWORD = 12
DEFAULT_MODEL = "visionops-classifier"
ROLES_GRANTED = {  # --flag: (experiment, registered model)
    "read_only": ("READ", "READ"),
    "edit": ("EDIT", "EDIT"),
    "gate": ("EDIT", "MANAGE"),  # the gate's identity (CI): may move @champion
}


def grant(args: argparse.Namespace) -> None:
    """Create USER (a generated password unless given) or change its password, and set its
    permissions: EDIT on the experiment and the registered model; --read-only: READ on both
    (it can look, never write a run, an artifact or a version); --gate: MANAGE on the model as
    well, the one permission that moves @champion (tracking/server_guard.py). Running it again
    updates the permissions."""
    if args.user == ADMIN:
        raise StackError(f"'{ADMIN}' is the stack's administrator", "grant a teammate's own user name")
    if args.password is not None and len(args.password) < MIN_PASSWORD:
        raise StackError(
            f"the password for '{args.user}' has {len(args.password)} characters (at least {MIN_PASSWORD})",
            "pass a longer --password, or none to have one generated",
        )
    settings = _running_stack_settings(args.dir.resolve())
    os.environ.update(settings)
    import mlflow
    from mlflow.server import get_app_client

    admin = get_app_client("basic-auth", tracking_uri=settings["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient(settings["MLFLOW_TRACKING_URI"])
    _registered_model(client, args.model)  # before the user exists: a typo changes nothing
    experiment = client.get_experiment_by_name(args.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(args.experiment)
    password = args.password or new_secret(18)
    try:
        admin.create_user(args.user, password)
    except mlflow.exceptions.MlflowException as exc:
        if "already exists" not in str(exc):
            raise StackError(
                f"MLflow refused user '{args.user}': {exc.message}", "choose another name"
            ) from None
        if args.password:
            admin.update_user_password(args.user, password)
        else:
            password = "(unchanged)"
    role = "gate" if args.gate else "read_only" if args.read_only else "edit"
    on_experiment, on_model = ROLES_GRANTED[role]
    _set_permission(admin, args.user, "experiment", experiment_id, on_experiment)
    _set_permission(admin, args.user, "registered_model", args.model, on_model)
    key = grant_dvc_key(args.dir.resolve(), args.user, read_only=args.read_only)
    print(
        f"user '{args.user}' (password: {password}): {on_experiment} on experiment '{args.experiment}', "
        f"{on_model} on '{args.model}'"
    )
    access = "read and list" if args.read_only else "read, write and list"
    print(
        f"DVC key for '{args.user}' ({access} on the DVC remote's bucket, nothing else): {key}\n"
        f"  hand them that file; in their clone: dvc remote modify --local team credentialpath FILE"
    )


def grant_dvc_key(state: Path, person: str, read_only: bool) -> Path:
    """Give `person` a DVC key of their own (kept across grants; the scope follows the latest),
    have SeaweedFS reload its identities (SIGHUP) and wait until the key works; its
    credentials file."""
    secret, people = load_secrets(state), s3_people(state)
    key = people.get(person) or {"access": "vp" + secrets.token_hex(9), "secret": new_secret(30)}
    people[person] = key | {"read_only": read_only}
    write_s3_config(state, secret, people)
    os.kill(int((state / "s3/weed.pid").read_text()), signal.SIGHUP)
    ports = json.loads((state / "ports.json").read_text())
    client = s3_client(ports["s3"], {"s3_access_key": key["access"], "s3_secret_key": key["secret"]})

    def works() -> bool:
        return bool(client.list_objects_v2(Bucket=DVC_BUCKET, MaxKeys=1))

    wait_until(works, "SeaweedFS taking the new DVC key", state / "s3/weed.log", timeout=30)
    return credentials_file(state, f"dvc-{person}", key["access"], key["secret"])


def _running_stack_settings(state: Path) -> dict[str, str]:
    """The admin's settings for the stack in `state`, which must be running."""
    if not (state / "ports.json").is_file() or not (state / "secrets.json").is_file():
        raise StackError(f"no team stack in {state}", f"start one first: team_stack.py start --dir {state}")
    if not running(state / "mlflow/mlflow.pid"):
        raise StackError(f"the team stack in {state} is not running", f"team_stack.py start --dir {state}")
    return admin_settings(json.loads((state / "ports.json").read_text()), load_secrets(state))


def _registered_model(client, name: str) -> None:
    """The team's registered model, created by the admin (so no teammate owns it) when it is the
    default one; any other name must exist already (a typo would create a stray model)."""
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        if name != DEFAULT_MODEL:
            known = [m.name for m in client.search_registered_models()]
            raise StackError(
                f"there is no registered model '{name}' (known: {', '.join(known) or 'none'})",
                f"check --model, or leave it out for '{DEFAULT_MODEL}'",
            ) from None
        client.create_registered_model(name)


def _set_permission(admin, user: str, kind: str, resource: str, permission: str) -> None:
    """Grant, or replace an earlier grant (MLflow refuses a second one as RESOURCE_ALREADY_EXISTS)."""
    import mlflow

    try:
        admin.grant_user_permission(user, kind, resource, permission)
    except mlflow.exceptions.MlflowException as exc:
        if "already exists" not in str(exc).lower() and exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        admin.revoke_user_permission(user, kind, resource)
        admin.grant_user_permission(user, kind, resource, permission)


def stop(args: argparse.Namespace) -> None:
    """Stop the stack whose state is in --dir: by its pid files, and, when those are gone (the
    folder was deleted under a running stack), by the state folder each service's environment
    names."""
    state = args.dir.resolve()
    stopped = []
    for name, pidfile in (
        ("mlflow server", state / "mlflow/mlflow.pid"),
        ("SeaweedFS", state / "s3/weed.pid"),
    ):
        if running(pidfile):
            stop_group(int(pidfile.read_text()))
            stopped.append(name)
        pidfile.unlink(missing_ok=True)
    cluster = pg_folder(state)
    if (cluster / "data/postmaster.pid").is_file():
        pg_ctl = str(postgres_bin() / "pg_ctl")
        stop_pg = [pg_ctl, "-D", str(cluster / "data"), "-m", "fast", "-w", "stop"]
        if subprocess.run([*as_postgres(), *stop_pg], capture_output=True).returncode == 0:
            stopped.append("PostgreSQL")
    stopped += _stop_strays(state)
    if args.purge:
        shutil.rmtree(cluster, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    done = f"stopped {', '.join(stopped)}" if stopped else "nothing was running"
    kept = "its data removed" if args.purge else "data kept; `stop --purge` removes it"
    print(f"team stack in {state}: {done} ({kept})")


def _stop_strays(state: Path) -> list[str]:
    """Services of the stack in `state` still running without a pid file: found by the state
    folder in their environment (spawn and start_postgres set it)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get(STACK_ENV) == str(state) and os.getpgid(proc.pid) == proc.pid:
                found.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue
    for proc in found:  # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for its clients)
        stop_group(proc.pid, signal.SIGINT if proc.info["name"] == "postgres" else signal.SIGTERM)
    return [f"{proc.info['name']} (pid {proc.pid}, no pid file)" for proc in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["start", "stop", "grant"])
    parser.add_argument("user", nargs="?", help="grant: the teammate's MLflow user name")
    parser.add_argument("--purge", action="store_true", help="stop: also remove the data and secrets")
    parser.add_argument("--password", help="grant: the user's password (default: generated, printed)")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--read-only", action="store_true", help="grant: READ on the experiment and the model")
    role.add_argument(
        "--gate", action="store_true", help="grant: MANAGE on the model: may move @champion (CI's login)"
    )
    parser.add_argument(
        "--experiment", default="visionops", help="grant: the experiment (default: %(default)s)"
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="grant: the registered model (default: %(default)s)"
    )
    parser.add_argument("--dir", type=Path, default=ROOT / ".server", help="state folder (default: .server)")
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--pg-port", type=int, default=5433)
    parser.add_argument("--s3-port", type=int, default=8333, help="S3 API; the next 3 ports (and +10000) too")
    args = parser.parse_args(argv)
    if args.command == "grant" and not args.user:
        parser.error("grant needs a USER")
    try:
        {"start": start, "stop": stop, "grant": grant}[args.command](args)
    except StackError as exc:
        print(f"team stack: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
