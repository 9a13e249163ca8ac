"""What the rig's Python checkers share: a browser with a cookie jar over plain HTTP/1.1, page parsing, the rig's
state file, and a minimal RESP client for talking to Redis and Sentinel directly (stdlib only)."""
import http.client
import json
import os
import re
import socket
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STATE = os.path.join(ROOT, "docker", ".rig")


PASSED, FAILED = [], []
FIGURES = {}


def check(name, ok, detail=""):
    """One verdict line: "ok" or "FAIL", with the detail when it failed."""
    (PASSED if ok else FAILED).append(name)
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + str(detail)}", flush=True)


def figure(text):
    print(f"figure: {text}", flush=True)


def finish(json_path=None):
    """Prints the figures as JSON (and writes them to json_path) and "N passed, M failed"; the exit status."""
    if json_path:
        with open(json_path, "w") as file:
            json.dump(FIGURES, file, indent=2)
    if FIGURES:
        print(json.dumps(FIGURES))
    print(f"{len(PASSED)} passed, {len(FAILED)} failed", flush=True)
    return 1 if FAILED else 0


def rig_env(state=STATE):
    """The running rig's docker/.rig/env as a dict."""
    values = {}
    with open(os.path.join(state, "env")) as file:
        for line in file:
            key, _, value = line.strip().partition("=")
            values[key] = value.strip('"')
    return values


class Browser:
    """One user's cookie jar against one address, one request per connection (as the rig's other checkers)."""

    def __init__(self, port, source=None, host="127.0.0.1"):
        self.host, self.port, self.source, self.cookies = host, port, source, {}

    def request(self, method, path, form=None, timeout=15):
        connection = http.client.HTTPConnection(
            self.host, self.port, timeout=timeout, source_address=(self.source, 0) if self.source else None)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if form is not None:
            body = "&".join(f"{k}={v.replace('/', '%2F')}" for k, v in form.items())
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    cookie = rest.split(";", 1)[0]
                    if "max-age=0" in value.lower() or not cookie:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = cookie
            return response.status, text
        finally:
            connection.close()

    def csrf(self, path):
        _, page = self.request("GET", path)
        return csrf_of(page)

    def sign_in(self, user, password):
        status, _ = self.request("POST", "/login", {"username": user, "password": password, "csrf": self.csrf("/")})
        return status

    def set_timezone(self, timezone):
        status, _ = self.request("POST", "/settings", {"timezone": timezone, "csrf": self.csrf("/settings")})
        return status


def csrf_of(page):
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    return match.group(1) if match else ""


def landing(page):
    """(user, timezone) that a landing page shows, or None for the sign-in page."""
    user = re.search(r"<h1>Hello, ([^<]+)</h1>", page)
    timezone = re.search(r'data-timezone="([^"]+)"', page)
    return (user.group(1), timezone.group(1)) if user and timezone else None


class Resp:
    """A blocking RESP2 connection to 127.0.0.1:port: commands, pipelines, and pushed messages."""

    def __init__(self, port, timeout=2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def send(self, *arguments):
        parts = [b"*%d\r\n" % len(arguments)]
        for argument in arguments:
            data = argument if isinstance(argument, bytes) else str(argument).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def call(self, *arguments):
        self.send(*arguments)
        return self.read()

    def _line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            while len(self.buffer) < length + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buffer += chunk
            data, self.buffer = self.buffer[:length], self.buffer[length + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.read() for _ in range(count)]
        raise ConnectionError(f"not RESP: {line[:40]!r}")


class RespError(str):
    """An error reply."""


def call(port, *arguments, timeout=2.0):
    """One command on a connection of its own; None when the server cannot be reached."""
    try:
        connection = Resp(port, timeout)
    except OSError:
        return None
    try:
        return connection.call(*arguments)
    except OSError:
        return None
    finally:
        connection.close()


def pairs(reply):
    """A flat [key, value, ...] reply as a dict."""
    return {reply[i]: reply[i + 1] for i in range(0, len(reply or []) - 1, 2)}


def wait_until(condition, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
