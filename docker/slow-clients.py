#!/usr/bin/env python3
"""One hostile client against the running rig's load balancer (start it with `docker/rig up`).

The attack on the rig took nginx down with 1,100 connections that never finished their request (1 worker, 1,024
connections, no per-client limit). This holds 1,100 such connections open from 127.0.0.1 and 120 requests whose
body never comes from 127.0.0.3, and checks, with other loopback addresses as other clients:
- another client is served at once while they are held;
- past 100 concurrent requests, one client gets 429 at once;
- nginx closes the unfinished heads within its client_header_timeout (10 s) and a margin.
The last line is "N passed, M failed".
"""
import os
import resource
import socket
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PASSED, FAILED = [], []


def check(name, ok, detail=""):
    (PASSED if ok else FAILED).append(name)
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + detail}", flush=True)


def lb_port():
    with open(os.path.join(ROOT, "docker", ".rig", "env")) as file:
        for line in file:
            if line.startswith("LB_PORT="):
                return int(line.strip().split("=", 1)[1])
    raise KeyError("LB_PORT")


def connect(port, source):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def served(port, source):
    """A whole request from `source`: the status line, and how long it took."""
    started = time.monotonic()
    with connect(port, source) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        status = sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
    return status, time.monotonic() - started


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192, hard))
    try:
        port = lb_port()
    except (OSError, KeyError) as error:
        print(f"slow-clients: no running rig ({error}); start it with docker/rig up", file=sys.stderr)
        return 2

    slow_heads, slow_bodies = [], []
    try:
        opened = time.monotonic()
        for _ in range(1100):
            sock = connect(port, "127.0.0.1")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: lb\r\nX-Slow: a")
            slow_heads.append(sock)
        status, elapsed = served(port, "127.0.0.2")
        check(
            "1,100 unfinished heads from one client: another client is served at once",
            status.endswith("200 OK") and elapsed < 2, f"{status!r} after {elapsed:.2f} s")

        refused = 0
        for _ in range(120):
            sock = connect(port, "127.0.0.3")
            sock.sendall(b"POST /login HTTP/1.1\r\nHost: lb\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 1000\r\n\r\n")
            slow_bodies.append(sock)
        for sock in slow_bodies:
            sock.settimeout(0.2)
            try:
                if sock.recv(64).startswith(b"HTTP/1.1 429"):
                    refused += 1
            except socket.timeout:
                pass
        check("past 100 concurrent requests one client gets 429", refused >= 15, f"{refused} of 120 got 429")
        status, elapsed = served(port, "127.0.0.4")
        check("meanwhile a third client is served", status.endswith("200 OK") and elapsed < 2, f"{status!r}")

        closed = 0
        for sock in slow_heads[:50]:
            sock.settimeout(max(0.1, opened + 16 - time.monotonic()))
            try:
                while sock.recv(4096):
                    pass
                closed += 1
            except (socket.timeout, ConnectionResetError):
                closed += 0 if isinstance(sys.exc_info()[1], socket.timeout) else 1
        check(
            "nginx closes unfinished heads within client_header_timeout",
            closed == 50, f"{closed} of 50 closed after {time.monotonic() - opened:.1f} s")
    finally:
        for sock in slow_heads + slow_bodies:
            sock.close()
    print(f"slow clients: {len(PASSED)} passed, {len(FAILED)} failed")
    return 0 if not FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
