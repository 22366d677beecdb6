"""A development PKI: one CA, a server certificate per KME (for 127.0.0.1/localhost), a client certificate
per SAE whose common name is the SAE ID.

>>> import tempfile
>>> paths = make_dev_pki(tempfile.mkdtemp(), kmes=["kme-a"], saes=["alice", "bob"])
>>> sorted(p.name for p in paths.values())[:3]
['alice.key', 'alice.pem', 'bob.key']
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qfabric.errors import QfabricError


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qfabric dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_private(path: str | Path, data: bytes) -> None:
    """Write a secret to ``path`` readable by its owner only from the first byte: a new file is created with mode
    0600 (never world-readable, whatever the umask), an existing one is truncated and tightened before writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_key(path: Path, key) -> None:
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _issue(ca_cert, ca_key, common_name: str, *, server: bool, days: int):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(  # a KME is also a client: of the KMEs it forwards keys to
                   [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server
                   else [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_ca(common_name: str = "qfabric dev CA", days: int = 365):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_dev_pki(out: str | Path, kmes: list[str], saes: list[str], days: int = 365,
                 ca_name: str = "ca") -> dict[str, Path]:
    """Write ``ca.pem``, ``<kme>.pem/.key`` and ``<sae>.pem/.key`` into ``out``; returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(kmes) + list(saes)
    if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
        raise QfabricError(f"KME and SAE IDs must be distinct, non-empty and without '/': {names}")
    ca_cert, ca_key = make_ca(f"qfabric dev CA ({ca_name})", days)
    paths = {"ca": out / f"{ca_name}.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for name, server in [(k, True) for k in kmes] + [(s, False) for s in saes]:
        cert, key = _issue(ca_cert, ca_key, name, server=server, days=days)
        paths[name] = out / f"{name}.pem"
        paths[f"{name}.key"] = out / f"{name}.key"
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(paths[f"{name}.key"], key)
    return paths


def common_name(der: bytes) -> str | None:
    """The subject common name of a DER certificate (the SAE ID), or ``None``."""
    cert = x509.load_der_x509_certificate(der)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def common_name_of(path: str | Path) -> str | None:
    """The subject common name of a PEM certificate file (the SAE ID it authenticates)."""
    return common_name(x509.load_pem_x509_certificate(Path(path).read_bytes()).public_bytes(
        serialization.Encoding.DER))
