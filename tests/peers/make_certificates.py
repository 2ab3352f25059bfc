"""Writes a test CA and a server certificate for 127.0.0.1 signed by it, for TLS tests.

    make_certificates.py DIR

DIR/ca.pem, DIR/server.pem (the chain: server, then CA), DIR/server.key (PKCS#8) and
DIR/other.key (a key that does not fit the certificate).
"""
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)


def pem_key(k):
    return k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


ca_key, key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qis-edge test CA")])
ca = (
    x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
    .public_key(ca_key.public_key()).serial_number(1)
    .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                 content_commitment=False, key_encipherment=False, data_encipherment=False,
                                 key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    .sign(ca_key, hashes.SHA256())
)
server = (
    x509.CertificateBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")]))
    .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
    .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .sign(ca_key, hashes.SHA256())
)
pem = serialization.Encoding.PEM
open(out + "/ca.pem", "wb").write(ca.public_bytes(pem))
open(out + "/server.pem", "wb").write(server.public_bytes(pem) + ca.public_bytes(pem))
open(out + "/server.key", "wb").write(pem_key(key))
open(out + "/other.key", "wb").write(pem_key(other))
