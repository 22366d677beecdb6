"""Serve an ASGI app over HTTPS with mandatory client certificates, exposing the certificate to the app.

uvicorn (0.54) does not fill the ASGI TLS extension, so :class:`ClientCertH11Protocol` wraps the app per
connection and adds ``scope["extensions"]["tls"]`` with ``client_cert_chain`` (PEM, leaf first) and
``tls_version``, as the ASGI TLS extension specifies. The certificate was verified against the CA by the
TLS handshake before any request is read.
"""

from __future__ import annotations

import ssl

from uvicorn.protocols.http.h11_impl import H11Protocol


def _with_tls(app, tls: dict):
    async def wrapped(scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["extensions"] = {**scope.get("extensions", {}), "tls": tls}
        await app(scope, receive, send)

    return wrapped


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the client certificate of the connection in every request's scope."""

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
        self.app = _with_tls(self.app, {"client_cert_chain": chain, "tls_version": version})


def client_certificate_der(scope) -> bytes | None:
    """The verified client certificate (DER) of a request, from the ASGI TLS extension."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None
