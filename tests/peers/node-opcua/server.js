// An OPC UA server for the integration tests, built on node-opcua (the most common independent
// implementation; this project did not write it), with the certificate node-opcua creates by
// default: RSA 2048, subject alternative names DNS:<fqdn>, DNS:<hostname>, the machine's external
// IPv4 addresses, then URI:urn:<hostname>:NodeOPCUA-Server last.
//
// Usage: node server.js --port PORT --dir DIR
//
// The certificate and key live in DIR/pki (created on first start, kept across restarts); client
// certificates are accepted automatically. Endpoints: Basic256Sha256 SignAndEncrypt only,
// anonymous identity. Variables in the server's own namespace (index 1, string node ids):
//   Temperature  Double  21.5
//   Count        Int32   -42
// Prints "ready <certificate.pem>" on stdout once it listens; exits on SIGTERM or SIGINT.
"use strict";
const path = require("node:path");
const { OPCUAServer } = require("node-opcua-server");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const { SecurityPolicy, MessageSecurityMode } = require("node-opcua-secure-channel");
const { DataType } = require("node-opcua-variant");

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`missing ${name}`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

async function main() {
  const dir = arg("--dir");
  const port = Number(arg("--port"));
  const server = new OPCUAServer({
    port,
    serverCertificateManager: new OPCUACertificateManager({
      rootFolder: path.join(dir, "pki"),
      automaticallyAcceptUnknownCertificate: true,
    }),
    securityPolicies: [SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: true,
  });
  await server.initialize();
  const space = server.engine.addressSpace;
  const ns = space.getOwnNamespace();
  for (const [name, dataType, value] of [
    ["Temperature", DataType.Double, 21.5],
    ["Count", DataType.Int32, -42],
  ]) {
    ns.addVariable({
      organizedBy: space.rootFolder.objects,
      browseName: name,
      nodeId: `s=${name}`,
      dataType,
      value: { dataType, value },
    });
  }
  await server.start();
  console.log(`ready ${server.certificateFile}`);
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
