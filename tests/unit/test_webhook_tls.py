"""The webhook's certificates: a TLS client that trusts only our CA accepts the server under
every name the API server may use, and a restart keeps the same CA (no caBundle churn)."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest

from xray_operator.reconcile.webhook_tls import ensure, generate, service_hosts, usable

HOSTS = service_hosts("xray-operator-webhook", "xray-system")


def handshake(certs_dir: Path, ca: bytes, server_hostname: str) -> str:
    """Serve one TLS connection with the stored cert; return what the client read."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs_dir / "tls.crt", certs_dir / "tls.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cadata=ca.decode())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.recv(2).decode()
    finally:
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("name", [*HOSTS])
def test_client_trusting_only_our_ca_accepts_every_service_name(tmp_path: Path, name: str) -> None:
    certs = ensure(tmp_path, HOSTS)
    assert handshake(tmp_path, certs.ca_pem, name) == "ok"


def test_a_name_not_in_the_certificate_is_refused(tmp_path: Path) -> None:
    certs = ensure(tmp_path, HOSTS)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, certs.ca_pem, "evil.example.com")


def test_restart_reuses_the_certificates(tmp_path: Path) -> None:
    first = ensure(tmp_path, HOSTS)
    key = (tmp_path / "tls.key").read_bytes()
    second = ensure(tmp_path, HOSTS)
    assert second.ca_pem == first.ca_pem
    assert (tmp_path / "tls.key").read_bytes() == key
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0


def test_new_host_or_expiry_or_broken_files_regenerate(tmp_path: Path) -> None:
    first = ensure(tmp_path, HOSTS)
    assert not usable(tmp_path, [*HOSTS, "10.0.0.7"])
    renewed = ensure(tmp_path, [*HOSTS, "10.0.0.7"])
    assert renewed.ca_pem != first.ca_pem
    assert handshake(tmp_path, renewed.ca_pem, "10.0.0.7") == "ok"

    in_a_year = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=340)
    assert not usable(tmp_path, HOSTS, now=in_a_year)

    (tmp_path / "tls.key").write_bytes(generate(HOSTS)[2])  # a key that does not match
    assert not usable(tmp_path, HOSTS)
