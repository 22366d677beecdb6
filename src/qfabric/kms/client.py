"""A small ETSI GS QKD 014 client for SAEs (httpx, mutual TLS).

>>> # with a running KME:
>>> # sae = SaeClient("https://127.0.0.1:8443", cert="pki/alice.pem", key="pki/alice.key", ca="pki/ca.pem")
>>> # keys = sae.enc_keys("bob", number=2)          # [(key_ID, bytes), ...]
"""

from __future__ import annotations

import base64
import ssl

import httpx

from qfabric.errors import QfabricError

# A mandatory enc_keys extension qfabric's KME supports: refuse (503, no key spent) when the worst QBER of
# the links carrying the pair's keys is above this value. {"max_link_qber": 0.11}
MAX_LINK_QBER = "max_link_qber"


class KmeError(QfabricError):
    """The KME refused a request: ``status`` and the ETSI error body (``None`` if the response had none)."""

    def __init__(self, status: int, body: dict | None):
        self.status, self.body = status, body
        super().__init__(f"KME answered {status}: {body}")


def tls_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


class SaeClient:
    """One SAE talking to its KME."""

    def __init__(self, base_url: str, cert: str, key: str, ca: str, timeout: float = 10.0):
        self.http = httpx.Client(base_url=base_url, verify=tls_context(cert, key, ca), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SaeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> dict:
        if response.status_code != 200:
            try:
                body = response.json() if response.content else None
            except ValueError:
                body = {"raw": response.text[:200]}
            raise KmeError(response.status_code, body)
        return response.json()

    def status(self, slave: str) -> dict:
        return self._json(self.http.get(f"/api/v1/keys/{slave}/status"))

    def enc_keys(self, slave: str, number: int = 1, size: int | None = None,
                 additional_slaves: list[str] | None = None,
                 extension_mandatory: list[dict] | None = None) -> list[tuple[str, bytes]]:
        body: dict = {"number": number}
        if size is not None:
            body["size"] = size
        if additional_slaves:
            body["additional_slave_SAE_IDs"] = additional_slaves
        if extension_mandatory:
            body["extension_mandatory"] = extension_mandatory
        data = self._json(self.http.post(f"/api/v1/keys/{slave}/enc_keys", json=body))
        return [(k["key_ID"], base64.b64decode(k["key"])) for k in data["keys"]]

    def dec_keys(self, master: str, key_ids: list[str]) -> list[tuple[str, bytes]]:
        body = {"key_IDs": [{"key_ID": k} for k in key_ids]}
        data = self._json(self.http.post(f"/api/v1/keys/{master}/dec_keys", json=body))
        return [(k["key_ID"], base64.b64decode(k["key"])) for k in data["keys"]]
