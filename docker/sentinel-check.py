#!/usr/bin/env python3
"""The rig's Sentinel faults, run by `docker/rig check` when the rig is up with `--topology sentinel`.

Under steady load through the load balancer (page views, and timezone changes as writes):
1. kill -9 of the master. Just before it, bob's "log out everywhere" is confirmed and alice changes her timezone.
   Every failed request must be a 503: no sign-in page for a signed-in user, no other error. The first success must
   come no later than 1 s after the first `+switch-master`. Afterwards, no instance may serve a timezone other than
   the one the new master's record holds, or serve bob's revoked session. The killed master must come back as a
   replica (its supervisor asks the sentinels first) and the set must heal.
2. SENTINEL FAILOVER. The old master is watched with MONITOR, and nothing the web tier writes may reach it more
   than 100 ms after the first `+switch-master`. The checker's own probe measures how long the old master keeps
   accepting writes after the announcement: the window in which an unconfirmed write can be lost.

Prints "ok"/"FAIL" lines, the figures, and "N passed, M failed". `--json FILE` writes the figures there too.
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rigkit import (  # noqa: E402
    FIGURES, STATE, Browser, Resp, RespError, call, check, finish, landing, pairs, rig_env, wait_until)
# What the web tier writes with; a sentinel's own commands (PING, INFO, PUBLISH hello, REPLICAOF) are not among them.
WRITES = {"EVALSHA", "EVAL", "MULTI", "EXEC", "HSET", "HDEL", "DEL", "UNLINK", "PEXPIRE", "PEXPIREAT", "EXPIRE",
          "ZADD", "ZREM", "SET", "INCR", "INCRBY", "HINCRBY", "RENAME"}


class Topology:
    def __init__(self, env):
        self.sentinels = [int(p) for p in env["SENTINEL_PORTS"].split()]
        self.nodes = [int(p) for p in env["NODE_PORTS"].split()]

    def master(self):
        for sentinel in self.sentinels:
            reply = call(sentinel, "SENTINEL", "get-master-addr-by-name", "rsess")
            if isinstance(reply, list) and len(reply) == 2:
                return int(reply[1])
        return None

    def replica(self):
        master = self.master()
        return next(port for port in self.nodes if port != master)

    def healed(self):
        master = self.master()
        if master is None or call(master, "ROLE") is None or (call(master, "ROLE") or [""])[0] != "master":
            return False
        info = call(self.replica(), "INFO", "replication") or ""
        if "master_link_status:up" not in info:
            return False
        for sentinel in self.sentinels:
            fields = pairs(call(sentinel, "SENTINEL", "MASTER", "rsess"))
            if fields.get("num-slaves") != "1" or fields.get("num-other-sentinels") != "2" or "down" in fields.get("flags", ""):
                return False
        return True


class SwitchWatcher:
    """Subscribes to +switch-master on every sentinel; remembers the first announcement's wall-clock time."""

    def __init__(self, sentinels):
        self.first = None
        self.lock = threading.Lock()
        for port in sentinels:
            threading.Thread(target=self.listen, args=(port,), daemon=True).start()
        time.sleep(0.2)

    def listen(self, port):
        try:
            connection = Resp(port, timeout=None)
            connection.call("SUBSCRIBE", "+switch-master")
            while True:
                message = connection.read()
                if isinstance(message, list) and len(message) == 3 and message[1] == "+switch-master":
                    with self.lock:
                        if self.first is None:
                            self.first = time.time()
        except (OSError, ConnectionError):
            return

    def wait(self, timeout):
        wait_until(lambda: self.first is not None, timeout)
        return self.first


class Load:
    """Page views of signed-in browsers through the load balancer, each recorded with its wall-clock time."""

    def __init__(self, browsers):
        self.browsers, self.records, self.stop = browsers, [], threading.Event()
        self.lock = threading.Lock()

    def start(self):
        for browser, expected_user in self.browsers:
            threading.Thread(target=self.loop, args=(browser, expected_user), daemon=True).start()
        return self

    def loop(self, browser, expected_user):
        while not self.stop.is_set():
            started = time.time()
            try:
                status, page = browser.request("GET", "/", timeout=20)
                shown = landing(page) if status == 200 else None
                kind = status if status != 200 else ("ok" if shown and shown[0] == expected_user else "signed out")
            except OSError as error:
                kind = f"connection error {type(error).__name__}"
            with self.lock:
                self.records.append((started, time.time(), kind))
            time.sleep(0.01)

    def between(self, start, end):
        with self.lock:
            return [r for r in self.records if start <= r[0] <= end]


class Writer:
    """Timezone changes in a loop (writes that go through the master)."""

    def __init__(self, browser):
        self.browser, self.stop, self.results = browser, threading.Event(), []

    def start(self):
        threading.Thread(target=self.loop, daemon=True).start()
        return self

    def loop(self):
        zones = ["Asia/Tokyo", "Europe/Paris", "America/Chicago", "UTC"]
        index = 0
        while not self.stop.is_set():
            try:
                status = self.browser.set_timezone(zones[index % len(zones)])
            except OSError:
                status = "connection error"
            self.results.append((time.time(), status))
            index += 1
            time.sleep(0.05)


def record_of(port, user):
    """(timezone, version) of the user's settings record on this node."""
    keys = []
    cursor = "0"
    while True:
        reply = call(port, "SCAN", cursor, "MATCH", f"rsess:user:*{user}", "COUNT", 1000)
        if not reply:
            return None
        cursor, batch = reply
        keys += [k for k in batch if k.endswith("}" + user)]
        if cursor == "0":
            break
    if not keys:
        return None
    fields = call(port, "HMGET", keys[0], "timezone", "version")
    return (fields[0], fields[1]) if fields else None


def pid_of(port):
    info = call(port, "INFO", "server") or ""
    for line in info.splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def kill_the_master(env, topology, webs, lb):
    alice = Browser(lb)
    check("alice signs in through the load balancer", alice.sign_in("alice", "wonderland") == 303)
    bob_kept, bob_other = Browser(lb), Browser(lb)
    check("bob signs in twice", bob_kept.sign_in("bob", "builder") == 303 and bob_other.sign_in("bob", "builder") == 303)
    load = Load([(alice, "alice")]).start()
    time.sleep(1)
    # Just before the kill: a confirmed log out everywhere, and a timezone change.
    status, _ = bob_other.request("POST", "/logout-everywhere", {"csrf": bob_other.csrf("/sessions")})
    check("bob's log out everywhere is confirmed before the kill", status in (200, 303), status)
    check("alice changes her timezone just before the kill", alice.set_timezone("Australia/Sydney") == 303)

    watcher = SwitchWatcher(topology.sentinels)
    master = topology.master()
    pid = pid_of(master)
    killed = time.time()
    os.kill(pid, 9)
    announced = watcher.wait(30)
    check("the sentinels announce a new master after kill -9", announced is not None)
    if announced is None:
        load.stop.set()
        return
    recovered = wait_until(lambda: any(r[2] == "ok" for r in load.between(announced, time.time())), 10, 0.02)
    time.sleep(1)
    load.stop.set()
    first_ok = min((r[1] for r in load.between(announced, time.time()) if r[2] == "ok"), default=None)
    during = load.between(killed, announced + 2)
    kinds = {}
    for record in during:
        kinds[record[2]] = kinds.get(record[2], 0) + 1
    check("every failed request during the failover is a 503", set(kinds) <= {"ok", 503}, kinds)
    check("the first success comes within 1 s of the announcement",
          recovered and first_ok is not None and first_ok - announced <= 1.0,
          f"{(first_ok or 0) - announced:.2f} s")
    new_master = topology.master()
    FIGURES["kill"] = {"announced_after_kill_s": round(announced - killed, 2),
                       "first_success_after_announcement_s": round((first_ok or 0) - announced, 3),
                       "first_success_after_kill_s": round((first_ok or 0) - killed, 2), "answers": kinds}
    print(f"figure: kill -9 of the master: +switch-master {announced - killed:.2f} s after the kill, first success "
          f"{(first_ok or 0) - announced:.3f} s after it ({(first_ok or 0) - killed:.2f} s after the kill); answers {kinds}")

    # No instance serves a stale timezone or the revoked session.
    record = record_of(new_master, "alice")
    shown = {}
    for web in webs:
        browser = Browser(web)
        browser.cookies = dict(alice.cookies)
        page = landing(browser.request("GET", "/")[1])
        shown[web] = page[1] if page else None
    check("every instance shows alice the timezone the new master holds",
          record is not None and all(value == record[0] for value in shown.values()), f"record {record}, shown {shown}")
    revoked = {}
    for web in webs:
        browser = Browser(web)
        browser.cookies = dict(bob_kept.cookies)
        revoked[web] = landing(browser.request("GET", "/")[1])
    check("bob's session revoked before the kill stays revoked on every instance",
          all(value is None for value in revoked.values()), revoked)

    # The killed master's supervisor restarts it as a replica of the new master.
    rejoined = wait_until(lambda: (call(master, "ROLE") or [""])[0] in ("slave", "replica"), 30, 0.2)
    check("the killed master comes back as a replica, not a second master", rejoined, call(master, "ROLE"))
    check("the set heals (replica in sync, sentinels agree)", wait_until(topology.healed, 60, 0.2))


def manual_failover(env, topology, lb):
    alice = Browser(lb)
    check("alice signs in for the manual failover", alice.sign_in("alice", "wonderland") == 303)
    writer_browser = Browser(lb)
    writer_browser.cookies = dict(alice.cookies)
    load = Load([(alice, "alice")]).start()
    writer = Writer(writer_browser).start()
    old_master = topology.master()
    monitor = Resp(old_master, timeout=None)
    monitor.call("MONITOR")
    lines = []

    def record_monitor():
        try:
            while True:
                line = monitor.read()
                if isinstance(line, str):
                    lines.append(line)
        except (OSError, ConnectionError):
            return

    threading.Thread(target=record_monitor, daemon=True).start()
    # The checker's own probe: when does the old master stop accepting writes?
    probe = Resp(old_master)
    watcher = SwitchWatcher(topology.sentinels)
    time.sleep(1)
    started = time.time()
    reply = call(topology.sentinels[0], "SENTINEL", "FAILOVER", "rsess")
    check("SENTINEL FAILOVER is accepted", reply == "OK", reply)
    announced = watcher.wait(30)
    check("the sentinels announce the switch", announced is not None)
    if announced is None:
        load.stop.set()
        writer.stop.set()
        return
    refused_at = None
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            answer = probe.call("SET", "rsess-probe:old-master", str(time.time()))
        except (OSError, ConnectionError):
            answer = RespError("closed")  # demoted: it dropped its clients
        if isinstance(answer, RespError):
            refused_at = time.time()
            break
        time.sleep(0.02)
    time.sleep(0.5)
    load.stop.set()
    writer.stop.set()
    monitor.close()
    late = []
    for line in list(lines):
        try:
            stamp = float(line.split(" ", 1)[0])
        except ValueError:
            continue
        parts = line.split('"')
        command = parts[1].upper() if len(parts) > 1 else ""
        client = line.split("[", 1)[1].split("]", 1)[0] if "[" in line else ""
        if stamp > announced + 0.1 and command in WRITES and " lua" not in client and "rsess-probe" not in line:
            late.append(line[:120])
    check("nothing the web tier writes reaches the demoted master more than 100 ms after +switch-master",
          not late, f"{len(late)} writes, first: {late[:2]}")
    during = load.between(started, time.time())
    kinds = {}
    for record in during:
        kinds[record[2]] = kinds.get(record[2], 0) + 1
    check("every failed page view during the manual failover is a 503", set(kinds) <= {"ok", 503}, kinds)
    writes = {}
    for _, status in writer.results:
        writes[status] = writes.get(status, 0) + 1
    check("every failed write during the manual failover is a 503", set(writes) <= {303, 503}, writes)
    window = (refused_at - announced) if refused_at else None
    FIGURES["manual"] = {"announced_after_command_s": round(announced - started, 2),
                         "old_master_accepted_writes_after_announcement_s": round(window, 2) if window else None,
                         "web_writes_on_old_master_after_100ms": len(late), "page_answers": kinds, "writes": writes}
    print(f"figure: SENTINEL FAILOVER: +switch-master {announced - started:.2f} s after the command; the old master "
          f"accepted writes for {window if window is None else round(window, 2)} s after it (the loss window); "
          f"web-tier writes on it later than 100 ms: {len(late)}; pages {kinds}; writes {writes}")
    check("the old master is demoted and the set heals", wait_until(topology.healed, 60, 0.2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", default=STATE)
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    env = rig_env(options.state)
    if env.get("TOPOLOGY") != "sentinel":
        sys.exit("sentinel-check: the rig is not up with --topology sentinel")
    topology = Topology(env)
    lb = int(env["LB_PORT"])
    webs = [int(env[f"WEB{n}_PORT"]) for n in (1, 2, 3)]
    check("the set is healthy before the faults", wait_until(topology.healed, 60, 0.2))
    kill_the_master(env, topology, webs, lb)
    manual_failover(env, topology, lb)
    return finish(options.json)


if __name__ == "__main__":
    sys.exit(main())
