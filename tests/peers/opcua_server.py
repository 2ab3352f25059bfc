"""An OPC UA server for the integration tests, built on asyncua (an implementation this project
did not write).

Usage: opcua_server.py --port PORT --dir DIR [--policies none,sign,encrypt]
                       [--users alice:secret,...] [--user-cert CERT.der --user-key KEY.pem]
                       [--no-anonymous] [--trusted-clients DIR]
                       [--wave-n N --wave-rate HZ --wave-hz HZ --wave-amp A]

Its certificate (RSA 2048, SAN DNS:localhost and URI urn:qis-edge:test-server) is created in
DIR on first start and kept, so a restarted server presents the same one. The namespace
urn:qis-edge:test is index 2, with these variables (string node ids):

  Temperature  Double   21.5        Pressure  Float    1.25      Count   Int32  -42
  Running      Boolean  true        Mode      String   "auto"    Big     UInt64 2^40
  Level        Double   0.0 (moved by `set`)
  Waveform     Double[wave-n]: wave-amp * sin(2 pi wave-hz t), t = i / wave-rate

Commands on stdin, one per line, each answered "ok" on stdout:
  set NAME VALUE    writes a Double (or Int32, Boolean, String, Float as the node is typed)
  wave HZ AMP       rewrites Waveform with another tone

With --trusted-clients, a client certificate is accepted only if a file in DIR (read at each
connection) holds it; otherwise the client is refused with BadCertificateUntrusted.

Prints "ready" on stdout once it listens.
"""

import argparse
import asyncio
import math
import sys
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto import uacrypto
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.common.utils import ServiceError
from cryptography.x509.oid import ExtendedKeyUsageOID

NAMESPACE = "urn:qis-edge:test"
SERVER_URI = "urn:qis-edge:test-server"


class Users:
    """Accepts the configured user names and passwords, the configured user certificate and,
    unless disabled, anonymous clients. (asyncua passes the secure channel's certificate for
    anonymous and user name tokens, the user certificate for X.509 tokens.)"""

    def __init__(self, users, cert_der, anonymous):
        self.users = users
        self.cert_der = cert_der
        self.anonymous = anonymous

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is not None:
            if self.users.get(username) == password:
                return User(role=UserRole.User, name=username)
            return None
        if self.cert_der is not None and certificate == self.cert_der:
            return User(role=UserRole.User, name="certificate")
        return User(role=UserRole.User) if self.anonymous else None


def waveform(n, rate, hz, amp):
    return [amp * math.sin(2 * math.pi * hz * i / rate) for i in range(n)]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--policies", default="none")
    parser.add_argument("--users", default="")
    parser.add_argument("--user-cert", type=Path, help="created with --user-key if missing")
    parser.add_argument("--user-key", type=Path)
    parser.add_argument("--no-anonymous", action="store_true")
    parser.add_argument("--trusted-clients", type=Path)
    parser.add_argument("--wave-n", type=int, default=4096)
    parser.add_argument("--wave-rate", type=float, default=25600.0)
    parser.add_argument("--wave-hz", type=float, default=160.0)
    parser.add_argument("--wave-amp", type=float, default=1.0)
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    cert, key = args.dir / "server-cert.der", args.dir / "server-key.pem"
    await setup_self_signed_certificate(
        key, cert, SERVER_URI, "localhost",
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        {"commonName": "qis-edge test server"},
    )

    users = dict(u.split(":", 1) for u in args.users.split(",") if u)
    cert_der = None
    if args.user_cert and args.user_key:
        await setup_self_signed_certificate(
            args.user_key, args.user_cert, "urn:qis-edge:test-user", "localhost",
            [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "operator"},
        )
    if args.user_cert:
        cert_der = uacrypto.der_from_x509(await uacrypto.load_certificate(args.user_cert))
    server = Server(user_manager=Users(users, cert_der, not args.no_anonymous))
    await server.init()
    server.set_endpoint(f"opc.tcp://localhost:{args.port}/")
    server.set_server_name("qis-edge test server")
    await server.set_application_uri(SERVER_URI)
    policies = {
        "none": ua.SecurityPolicyType.NoSecurity,
        "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
        "encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    }
    server.set_security_policy([policies[p] for p in args.policies.split(",")])
    tokens = []
    if not args.no_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if users:
        tokens.append(ua.UserNameIdentityToken)
    if cert_der is not None:
        tokens.append(ua.X509IdentityToken)
    server.set_identity_tokens(tokens)
    if args.trusted_clients:
        args.trusted_clients.mkdir(parents=True, exist_ok=True)

        async def validate(certificate, app_description):
            der = uacrypto.der_from_x509(certificate)
            if not any(f.read_bytes() == der for f in args.trusted_clients.iterdir()):
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

        server.set_certificate_validator(validate)
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))

    idx = await server.register_namespace(NAMESPACE)
    assert idx == 2, idx
    plant = await server.nodes.objects.add_object(idx, "Plant")
    initial = {
        "Temperature": ua.Variant(21.5, ua.VariantType.Double),
        "Pressure": ua.Variant(1.25, ua.VariantType.Float),
        "Count": ua.Variant(-42, ua.VariantType.Int32),
        "Running": ua.Variant(True, ua.VariantType.Boolean),
        "Mode": ua.Variant("auto", ua.VariantType.String),
        "Big": ua.Variant(2**40, ua.VariantType.UInt64),
        "Level": ua.Variant(0.0, ua.VariantType.Double),
        "Waveform": ua.Variant(
            waveform(args.wave_n, args.wave_rate, args.wave_hz, args.wave_amp),
            ua.VariantType.Double,
        ),
    }
    nodes = {}
    for name, value in initial.items():
        nodes[name] = await plant.add_variable(ua.NodeId(name, idx), name, value)

    async with server:
        print("ready", flush=True)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "set":
                name, text = words[1], words[2]
                kind = initial[name].VariantType
                if kind == ua.VariantType.Boolean:
                    value = text.lower() == "true"
                elif kind == ua.VariantType.String:
                    value = text
                elif kind in (ua.VariantType.Int32, ua.VariantType.UInt64):
                    value = int(text)
                else:
                    value = float(text)
                await nodes[name].write_value(ua.Variant(value, kind))
            elif words[0] == "wave":
                samples = waveform(args.wave_n, args.wave_rate, float(words[1]), float(words[2]))
                await nodes["Waveform"].write_value(ua.Variant(samples, ua.VariantType.Double))
            print("ok", flush=True)
        # stdin closed: the test is gone.


if __name__ == "__main__":
    asyncio.run(main())
