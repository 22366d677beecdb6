"""SAE identities by certificate: an SAE signs what others relay for it, and checks what its peers signed.

The certificate and key are the ones the SAE uses for mutual TLS with its KME; a peer's certificate must
be issued by the same CA and name the claimed SAE ID as its common name. Signatures cover a label and
length-prefixed parts, so a signature for one purpose or message never verifies for another.

>>> import tempfile
>>> from qfabric.kms.certs import make_dev_pki
>>> pki = make_dev_pki(tempfile.mkdtemp(), kmes=[], saes=["alice", "bob"])
>>> alice = SaeIdentity.load(pki["alice"], pki["alice.key"], pki["ca"])
>>> bob = SaeIdentity.load(pki["bob"], pki["bob.key"], pki["ca"])
>>> sig = alice.sign("public", b"alice's public keys")
>>> bob.verify(alice.cert_pem, "alice", sig, "public", b"alice's public keys")
>>> bob.verify(alice.cert_pem, "alice", sig, "public", b"someone else's keys")
Traceback (most recent call last):
...
qfabric.kms.identity.NotAuthenticated: alice's signature on public does not verify
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from qfabric.errors import QfabricError

DOMAIN = b"qfabric-sae-signature/v1"


class NotAuthenticated(QfabricError):
    """A certificate or a signature from a peer SAE does not check out."""


def _message(label: str, parts: tuple[bytes | str | int, ...]) -> bytes:
    out = [DOMAIN, label.encode()]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(struct.pack(">I", len(data)) + data)
    return b"\x00".join(out)


class SaeIdentity:
    """This SAE's certificate and private key, and the CA its peers' certificates must come from."""

    def __init__(self, cert_pem: bytes, key_pem: bytes, ca_pem: bytes):
        self.cert_pem = cert_pem
        self._key = serialization.load_pem_private_key(key_pem, password=None)
        self._ca = x509.load_pem_x509_certificate(ca_pem)
        self._verified: dict[bytes, tuple[str, object]] = {}  # certificate PEM -> (SAE ID, public key)
        names = x509.load_pem_x509_certificate(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.sae = str(names[0].value) if names else ""  # whether peers trust it is theirs to check

    @classmethod
    def load(cls, cert: str | Path, key: str | Path, ca: str | Path) -> SaeIdentity:
        return cls(Path(cert).read_bytes(), Path(key).read_bytes(), Path(ca).read_bytes())

    def sign(self, label: str, *parts: bytes | str | int) -> bytes:
        return self._key.sign(_message(label, parts), ec.ECDSA(hashes.SHA256()))

    def _check_certificate(self, cert_pem: bytes) -> tuple[str, object]:
        if cert_pem in self._verified:
            return self._verified[cert_pem]
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise NotAuthenticated(f"a peer certificate not issued by this federation's CA: {err or 'bad signature'}"
                                   ) from None
        now = dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise NotAuthenticated(f"a peer certificate outside its validity ({cert.not_valid_after_utc:%Y-%m-%d})")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            raise NotAuthenticated("a peer certificate without a common name (the SAE ID)")
        self._verified[cert_pem] = (str(names[0].value), cert.public_key())
        return self._verified[cert_pem]

    def verify(self, cert_pem: bytes, sae: str, signature: bytes, label: str, *parts: bytes | str | int) -> None:
        """Raise :class:`NotAuthenticated` unless ``cert_pem`` is ``sae``'s (same CA) and it signed the parts."""
        name, public_key = self._check_certificate(cert_pem)
        if name != sae:
            raise NotAuthenticated(f"the certificate presented for {sae!r} is {name!r}'s")
        try:
            public_key.verify(signature, _message(label, parts), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise NotAuthenticated(f"{sae}'s signature on {label} does not verify") from None
