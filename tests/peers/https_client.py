"""An independent HTTPS client for the dashboard tests (Python's ssl and http.client).

    https_client.py CA_FILE PORT METHOD PATH [BODY]

Verifies the server's certificate against CA_FILE and its name (127.0.0.1), sends one request
and prints one JSON object: {"status", "headers": {lower-case name: value}, "body", "tls"}.
A failed handshake prints {"error": "..."} and exits 1.
"""
import http.client
import json
import ssl
import sys

ca, port, method, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
context = ssl.create_default_context(cafile=ca)
connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
try:
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
except (ssl.SSLError, OSError) as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(1)
print(json.dumps({
    "status": response.status,
    "headers": {k.lower(): v for k, v in response.getheaders()},
    "body": response.read().decode("utf-8", "replace"),
    "tls": connection.sock.version(),
}))
