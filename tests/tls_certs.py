"""A throwaway PKI for TLS tests, made with the `cryptography` package: a CA, a server certificate for given host
names, a client certificate, and an unrelated CA (a certificate it did not sign must be refused)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metadata_assets.local_mariadb import ServerTLS


@dataclass(frozen=True)
class PKI:
    ca: Path  # the CA certificate clients verify the server against
    server: ServerTLS  # the server's certificate (signed by ca) and key, and ca for client certificates
    client_cert: Path  # CN = client_cn, signed by ca
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(path, 0o600)  # libpq refuses a client key that others can read
    return path


def _write_cert(cert, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(cn: str):
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(ca_key, ca_cert, cn: str, usage, names: tuple[str, ...] = ()):
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        sans = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_pki(directory: Path, server_names: tuple[str, ...] = ("localhost",), client_cn: str = "tls_client") -> PKI:
    """Files under `directory`. The server certificate names exactly `server_names` (default: localhost only, so a
    client connecting to 127.0.0.1 with host-name checks must refuse it)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("metadata-assets test CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, server_names[0], ExtendedKeyUsageOID.SERVER_AUTH, server_names)
    client_key, client_cert = _leaf(ca_key, ca_cert, client_cn, ExtendedKeyUsageOID.CLIENT_AUTH)
    _, other_cert = _ca("some other CA")
    ca = _write_cert(ca_cert, d / "ca.pem")
    return PKI(
        ca=ca,
        server=ServerTLS(
            cert=_write_cert(server_cert, d / "server-cert.pem"),
            key=_write_key(server_key, d / "server-key.pem"),
            ca=ca,
        ),
        client_cert=_write_cert(client_cert, d / "client-cert.pem"),
        client_key=_write_key(client_key, d / "client-key.pem"),
        other_ca=_write_cert(other_cert, d / "other-ca.pem"),
    )
