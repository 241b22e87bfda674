"""TLS material for the lab: a private CA and a server certificate for 127.0.0.1 / localhost.

The Azure SDK refuses bearer tokens over plain HTTP, and turning that check off would make the
lab differ from production. So the lab serves HTTPS with its own CA and hands the CA file to the
clients (`connection_verify=`), which is what a private-CA deployment looks like too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
SERVER_CERT_NAME = "server.pem"
SERVER_KEY_NAME = "server-key.pem"

SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = (ipaddress.ip_address("127.0.0.1"),)

_VALIDITY = dt.timedelta(days=365)
# Reissue well before expiry so that a lab started today still works tomorrow.
_RENEW_BEFORE = dt.timedelta(days=7)
# Clock skew between processes must not make a fresh certificate "not yet valid".
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class LabTls:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_lab_tls(directory: Path) -> LabTls:
    """Create (or reuse, when still valid) the lab CA and the server certificate in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert_path = directory / CA_CERT_NAME
    ca_key_path = directory / CA_KEY_NAME
    server_cert_path = directory / SERVER_CERT_NAME
    server_key_path = directory / SERVER_KEY_NAME
    now = dt.datetime.now(dt.UTC)

    ca = _load_valid_ca(ca_cert_path, ca_key_path, now)
    if ca is None:
        ca = _new_ca(now)
        _write_key(ca_key_path, ca[1])
        _write_cert(ca_cert_path, ca[0])
        # A new CA invalidates any server certificate signed by the old one.
        server_ok = False
    else:
        server_ok = _server_is_valid(server_cert_path, server_key_path, ca[0], now)

    if not server_ok:
        cert, key = _new_server_cert(ca[0], ca[1], now)
        _write_key(server_key_path, key)
        _write_cert(server_cert_path, cert)

    return LabTls(ca_cert=ca_cert_path, server_cert=server_cert_path, server_key=server_key_path)


def _load_valid_ca(
    cert_path: Path, key_path: Path, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if not _time_valid(cert, now) or not _key_matches(cert, key):
        return None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    if not constraints.ca:
        return None
    return cert, key


def _server_is_valid(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, now: dt.datetime
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return False
    if not _time_valid(cert, now) or not _key_matches(cert, key):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns_names = set(san.get_values_for_type(x509.DNSName))
    ip_addresses = set(san.get_values_for_type(x509.IPAddress))
    return set(SERVER_DNS_NAMES) <= dns_names and set(SERVER_IP_ADDRESSES) <= ip_addresses


def _time_valid(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and now + _RENEW_BEFORE < cert.not_valid_after_utc


def _key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "asr-failback lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "asr-failback lab CA"),
        ]
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_DNS_NAMES]
    alt_names += [x509.IPAddress(ip) for ip in SERVER_IP_ADDRESSES]
    cert = (
        _leaf(ca_cert, key, "localhost", now)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, name: str, now: dt.datetime
) -> x509.CertificateBuilder:
    """A certificate for `name` issued by the lab CA, not a CA itself, valid from a little
    before now."""
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "asr-failback lab"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )


def make_client_cert(tls: LabTls, name: str, directory: Path) -> tuple[Path, Path]:
    """A client certificate (clientAuth) for `name`, signed by the lab CA: what a Temporal
    server that requires mutual TLS asks the worker and the CLI for. (certificate, key) paths."""
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(
        tls.ca_cert.with_name(CA_KEY_NAME).read_bytes(), None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _leaf(ca_cert, key, name, now)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _atomic_write(path, data, mode=0o600)


def _atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    # Another process (a second lab start, a test) may be reading the file right now: it must
    # see either the old or the new content, never half of it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
