"""What the rig's Python checkers share (partition-check.py, scripts/soak): a browser with a cookie jar over plain
HTTP/1.1, page parsing, the verdict lines and the rig's state file (stdlib only). Nothing here speaks to Redis: checks
that need the key layout or RESP live in the Swift rig-check, which shares HashSlot and SessionKeys with the
library."""
import http.client
import json
import os
import re

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
