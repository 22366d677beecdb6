"""Serve an ASGI app over HTTPS with mandatory client certificates, exposing the certificate to the app.

uvicorn does not fill the ASGI TLS extension, so :class:`ClientCertMixin` (on uvicorn's httptools or h11
protocol) adds ``scope["extensions"]["tls"]`` to every request's scope (httptools: as the scope is made; h11:
by wrapping the app per connection) with ``client_cert_chain`` (PEM, leaf first) and ``tls_version``, as the
ASGI TLS extension specifies. The certificate was verified against the CA by the TLS handshake before any
request is read.

:data:`TLS12_CIPHERS` limits TLS 1.2 to ECDHE key exchange with AEAD ciphers (TLS 1.3 suites are not affected
by it); :func:`server_ssl_context` builds the server side with it.
"""

from __future__ import annotations

import ssl

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# OpenSSL cipher string for TLS 1.2: ephemeral ECDH with AES-GCM or ChaCha20-Poly1305, nothing else (no CBC,
# no RSA or DH key exchange, no anonymous suites). For ``uvicorn.Config(ssl_ciphers=...)``.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_ssl_context(certfile: str, keyfile: str, cafile: str) -> ssl.SSLContext:
    """A KME's server context: TLS 1.2 or later, :data:`TLS12_CIPHERS`, a client certificate of ``cafile``'s CA
    required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.load_verify_locations(cafile)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_ciphers(TLS12_CIPHERS)
    return context


def _with_tls(app, tls: dict):
    async def wrapped(scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["extensions"] = {**scope.get("extensions", {}), "tls": tls}
        await app(scope, receive, send)

    return wrapped


class ClientCertMixin:
    """For a uvicorn HTTP protocol class: the client certificate of the connection in every request's scope."""

    app: object
    tls_extension: dict  # {"client_cert_chain": [PEM], "tls_version": ...} of the connection

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        chain: list[str] = []
        version = None
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                chain = [ssl.DER_cert_to_PEM_cert(der)]
            version = ssl_object.version()
        self.tls_extension = {"client_cert_chain": chain, "tls_version": version}
        self._add_tls_extension()

    def _add_tls_extension(self) -> None:
        self.app = _with_tls(self.app, self.tls_extension)


class ClientCertH11Protocol(ClientCertMixin, H11Protocol):
    """uvicorn's h11 protocol, plus the client certificate of the connection in every request's scope."""


class ClientCertHttpToolsProtocol(ClientCertMixin, HttpToolsProtocol):
    """uvicorn's httptools protocol (the llhttp parser, in C), plus the client certificate in every scope: put in
    the scope as the protocol makes it for each request (no wrapper around the app, no copy of the scope)."""

    def _add_tls_extension(self) -> None:
        return None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": self.tls_extension}  # a new dict per request, as the scope


def client_certificate_der(scope) -> bytes | None:
    """The verified client certificate (DER) of a request, from the ASGI TLS extension."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None
