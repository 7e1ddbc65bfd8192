"""SeaweedFS's own security configuration for the team stack: only the S3 port answers clients.

`weed server` listens on four HTTP ports (S3, master, volume, filer) and their gRPC twins. The
S3 gateway checks keys; the other three would let anyone on the host list, read and overwrite
every object. SeaweedFS's `security.toml` closes them: mutual TLS on the master, volume and filer
HTTP ports and on every gRPC port (a client without the stack's certificate fails the
handshake), and JWT signing keys on volume and filer reads and writes besides. The certificate
authority, the one node certificate and the keys live in the state folder, readable by its
owner only; no secret goes on a command line.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path

SECURITY_FILE = "security.toml"  # weed reads it from -config_dir
TLS_FOLDER = "tls"
JWT_KEYS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
GRPC_SERVERS = ("master", "volume", "filer", "s3")
HTTPS_SERVERS = ("master", "volume", "filer")


def write_security_config(folder: Path) -> Path:
    """`folder`/security.toml with mTLS on every internal port and JWT keys for reads and
    writes; the certificates are made once (kept across restarts), the file is rewritten."""
    tls = folder / TLS_FOLDER
    if not (tls / "node.key").is_file():
        make_certificates(tls)
    ca, cert, key = (str(tls / name) for name in ("ca.crt", "node.crt", "node.key"))
    keys = _jwt_keys(folder / "jwt.keys")
    node = f'cert = "{cert}"\nkey = "{key}"\n'
    sections = [
        "[access]\nui = false\n",
        "[filer.expose_directory_metadata]\nenabled = false\n",
        *(f'[{name}]\nkey = "{keys[name]}"\nexpires_after_seconds = 10\n' for name in JWT_KEYS),
        f'[grpc]\nca = "{ca}"\n',
        *(f"[grpc.{server}]\n{node}" for server in GRPC_SERVERS),
        f"[grpc.client]\n{node}",
        f'[https.client]\nenabled = true\n{node}ca = "{ca}"\n',
        *(f'[https.{server}]\n{node}ca = "{ca}"\n' for server in HTTPS_SERVERS),
    ]
    path = folder / SECURITY_FILE
    _write_private(path, "\n".join(sections))
    return path


def _jwt_keys(path: Path) -> dict[str, str]:
    """One random key per JWT section, generated once and kept beside the configuration."""
    if path.is_file():
        stored = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        if set(JWT_KEYS) <= set(stored):
            return stored
    keys = {name: secrets.token_hex(32) for name in JWT_KEYS}
    _write_private(path, "".join(f"{name}={value}\n" for name, value in keys.items()))
    return keys


def make_certificates(folder: Path, days: int = 3650) -> None:
    """A private certificate authority and one node certificate it signs, for 127.0.0.1 and
    localhost, good for both server and client authentication (SeaweedFS does not check host
    names on gRPC; HTTPS clients do)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject: str, key, issuer: x509.Name) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
        )

    ca_key, node_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        certificate("visionops-stack-ca", ca_key, name("visionops-stack-ca"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    builder = certificate("visionops-stack", node_key, ca.subject)
    hosts = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    node = (
        builder.add_extension(x509.SubjectAlternativeName(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = serialization.Encoding.PEM
    _write_private(folder / "ca.crt", ca.public_bytes(pem).decode())
    _write_private(folder / "node.crt", node.public_bytes(pem).decode())
    private = node_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(folder / "node.key", private.decode())


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, from its first byte on."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
