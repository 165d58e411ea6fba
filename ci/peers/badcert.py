"""A server certificate with one fault, signed by the peers' CA, for the fault-matrix tests.

usage: badcert.py expired|wrong-host CA_CERT CA_KEY OUT_DIR
writes OUT_DIR/cert.pem and OUT_DIR/key.pem. Run with the peers' venv python (cryptography).
  expired     for 127.0.0.1 and localhost, valid from 30 days ago until yesterday
  wrong-host  valid now, but only for DNS:wrong.fedprobe.invalid
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("expired", "wrong-host"):
        sys.exit(__doc__)
    kind, ca_cert, ca_key, out = sys.argv[1:]
    with open(ca_cert, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(ca_key, "rb") as f:
        ca_priv = serialization.load_pem_private_key(f.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    if kind == "expired":
        name = "127.0.0.1"
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        name = "wrong.fedprobe.invalid"
        sans = [x509.DNSName(name)]
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_priv, hashes.SHA256())
    )
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(out, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


if __name__ == "__main__":
    main()
