"""Certificates for TLS tests and examples, made with the ``openssl`` command line.

:func:`make_certificates` writes a private CA, a server certificate for ``localhost`` and
``127.0.0.1`` and a client certificate (for mutual TLS), all signed by that CA, with the
same ``openssl`` commands as the README's TLS examples.  X.509 v3 certificates with the
extensions rustls (Zenoh) insists on; Redis and Python's ``ssl`` take them too.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import OprcEventsError

__all__ = ["Certificates", "make_certificates"]


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files :func:`make_certificates` wrote."""

    ca: Path
    server_certificate: Path
    server_key: Path
    client_certificate: Path
    client_key: Path

    def server_args(self) -> list[str]:
        """``redis-server`` arguments for its TLS certificate, key and CA."""
        return [
            "--tls-cert-file",
            str(self.server_certificate),
            "--tls-key-file",
            str(self.server_key),
            "--tls-ca-cert-file",
            str(self.ca),
        ]

    def url_query(self, *, client_certificate: bool = True) -> str:
        """The query of a ``rediss://`` URL that trusts the CA (and presents the client
        certificate when ``client_certificate``)."""
        query = f"ssl_ca_certs={self.ca}&ssl_cert_reqs=required"
        if client_certificate:
            query += f"&ssl_certfile={self.client_certificate}&ssl_keyfile={self.client_key}"
        return query


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise OprcEventsError("openssl is needed to make certificates (apt-get install openssl)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise OprcEventsError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _signed(name: str, subject: str, extensions: str, cwd: Path) -> None:
    """``<name>.key`` and ``<name>.pem``, signed by ``ca.pem``."""
    (cwd / f"{name}.ext").write_text(extensions + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout",
             f"{name}.key", "-out", f"{name}.csr", cwd=cwd)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out",
             f"{name}.pem", cwd=cwd)  # fmt: skip


def make_certificates(directory: Path | str) -> Certificates:
    """A CA, a server certificate (``localhost``, ``127.0.0.1``) and a client certificate
    in ``directory`` (valid for 2 days)."""
    cwd = Path(directory)
    cwd.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=oprc-test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=cwd)  # fmt: skip
    _signed("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd)
    _signed("client", "/CN=oprc-client", "extendedKeyUsage=clientAuth", cwd)
    return Certificates(
        ca=cwd / "ca.pem",
        server_certificate=cwd / "server.pem",
        server_key=cwd / "server.key",
        client_certificate=cwd / "client.pem",
        client_key=cwd / "client.key",
    )
