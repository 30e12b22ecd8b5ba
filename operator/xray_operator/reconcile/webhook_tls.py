"""TLS for the admission webhook: a private CA and a serving certificate, made with `cryptography`.

kopf can self-sign, but only through oscrypto, which fails on OpenSSL 3; the API server only
needs a CA bundle it can verify the serving certificate against, so we make both here.

The files are kept in a directory and reused while they are valid and name every host the API
server may use: a new CA on every start would change the webhook's caBundle, i.e. a write per
restart and a window in which the API server rejects the new certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.crt"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class WebhookCerts:
    directory: Path
    ca_pem: bytes

    @property
    def certfile(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def keyfile(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cafile(self) -> Path:
        return self.directory / CA_FILE


def service_hosts(service: str, namespace: str) -> list[str]:
    """Every name the API server may use for a Service, plus loopback for local runs."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def generate(
    hosts: Sequence[str], *, now: datetime.datetime | None = None
) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, serving certificate, serving key), all PEM."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host")
    now = now or datetime.datetime.now(datetime.UTC)
    # Backdated a little: the API server's clock may lag ours.
    not_before = now - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xray-operator webhook CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        # Go's TLS (the API server) checks SANs only, never the common name.
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key_pem,
    )


def usable(directory: Path, hosts: Sequence[str], *, now: datetime.datetime | None = None) -> bool:
    """The stored files exist, chain to the stored CA, name every host and are not expiring."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        ca = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        cert = x509.load_pem_x509_certificate((directory / CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / KEY_FILE).read_bytes(), None)
    except (OSError, ValueError):
        return False
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    for certificate in (ca, cert):
        if certificate.not_valid_after_utc - RENEW_BEFORE < now:
            return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    present |= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    return all(str(_canonical(h)) in present for h in hosts)


def _canonical(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def ensure(directory: Path, hosts: Sequence[str]) -> WebhookCerts:
    """Reuse the certificates in `directory` if still good for `hosts`, else make new ones."""
    directory.mkdir(parents=True, exist_ok=True)
    if not usable(directory, hosts):
        ca_pem, cert_pem, key_pem = generate(hosts)
        _write(directory / CA_FILE, ca_pem, 0o644)
        _write(directory / KEY_FILE, key_pem, 0o600)
        # The certificate last: kopf's server reloads when it changes, and must find the new key.
        _write(directory / CERT_FILE, cert_pem, 0o644)
    return WebhookCerts(directory, (directory / CA_FILE).read_bytes())


def _write(path: Path, data: bytes, mode: int) -> None:
    # Write then rename, so a reader never sees half a file.
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
