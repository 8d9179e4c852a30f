#!/usr/bin/env python3
"""Idle keep-alive connections for bench/run.sh and bench/tls.sh's memory figures.

Usage: idle.py PORT N FLAG [CA_FILE] [HOLD_SECONDS]
Opens N connections to 127.0.0.1:PORT (over TLS 1.3 verified against CA_FILE as `localhost`
when one is given), sends one GET /b100 on each, reads the 100-byte answers, then creates FLAG
and holds the connections idle for HOLD_SECONDS (30). A proxy that resets or closes some of them
did not hold them all: FLAG.failed says why, and there is no figure.
"""
import socket
import ssl
import sys
import time

port, n, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ca = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
hold = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
ctx = None
if ca:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
socks = []
try:
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10 if ctx else None)
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(b"GET /b100 HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks.append(s)
    for s in socks:
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 100:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed before its response")
            got += chunk
except (OSError, ssl.SSLError) as e:
    open(flag + ".failed", "w").write(str(e))
    sys.exit(0)
open(flag, "w").close()
time.sleep(hold)
