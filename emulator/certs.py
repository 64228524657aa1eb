"""Local CA (DIR/ca.pem) and a server certificate for 127.0.0.1/localhost, made on first start."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_certs(data_dir: str | Path, hosts: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """Return (ca.pem, server.pem, server-key.pem) in data_dir, creating them when missing."""
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = data / "ca.pem", data / "server.pem", data / "server-key.pem"
    ca_key_path = data / "ca-key.pem"
    now = dt.datetime.now(dt.UTC)
    if not (ca_path.exists() and ca_key_path.exists()):
        ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenant Emulator Local CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "O365 Gateway emulator")])
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        ca_key_path.write_bytes(_pem_key(ca_key))
        ca_key_path.chmod(0o600)
        ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_path.unlink(missing_ok=True)
    if not (cert_path.exists() and key_path.exists()):
        # The emulator's own key, written by it above: the RSA consistency check (0.1 s a key) is skipped.
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None,
                                                    unsafe_skip_rsa_key_validation=True)
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = _key()
        alt: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.DNSName("localhost")]
        for host in hosts:
            if host in ("127.0.0.1", "localhost", "", "0.0.0.0"):
                continue
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=825))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, key_path
