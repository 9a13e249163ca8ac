#!/usr/bin/env python3
"""The rig's Redis Cluster faults, run by `docker/rig check` when the rig is up with `--topology cluster`.

Under steady page views through the load balancer (alice and bob, whose keys live in one slot each), it runs:
1. `redis-cli --cluster reshard` of 100 slots between two primaries;
2. `CLUSTER FAILOVER` on a replica;
3. a fourth primary joined with `--cluster add-node`, with 100 slots moved to it.

After each change:
- no request may fail;
- the slowest page view is reported, and it must stay under 100 ms;
- a "log out everywhere" issued right after the change must be honoured by every instance at once.

4. `kill -9` of the primary that owns alice's slot:
   - alice's requests may fail, and only with 503;
   - bob's requests, on another shard, may not fail at all;
   - alice's shard must be back within the node timeout plus 2 s;
   - afterwards every instance shows the timezone that the cluster holds.

Prints "ok"/"FAIL" lines, the figures, and "N passed, M failed". `--json FILE` also writes the figures there.
"""
import argparse
import base64
import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rigkit import FIGURES, STATE, Browser, call, check, finish, landing, rig_env, wait_until  # noqa: E402

def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def user_slot(user):
    """The slot of every key of a signed-in user: the tag is 3 base64url characters of SHA-256(user)."""
    tag = base64.urlsafe_b64encode(hashlib.sha256(user.encode()).digest()[:3])[:3]
    return crc16(tag) & 0x3FFF


def free_cluster_port():
    """A free port at most 55535 whose cluster bus port (+10000) is free too."""
    while True:
        port = random.randrange(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue


class Cluster:
    def __init__(self, ports, state):
        self.ports, self.state = list(ports), state

    def slots(self):
        for port in self.ports:
            reply = call(port, "CLUSTER", "SLOTS")
            if isinstance(reply, list) and reply:
                return [(int(r[0]), int(r[1]), int(r[2][1])) for r in reply]
        return []

    def owner(self, slot):
        return next((port for start, end, port in self.slots() if start <= slot <= end), None)

    def primaries(self):
        return sorted({port for _, _, port in self.slots()})

    def replica_of(self, primary):
        for port in self.ports:
            info = call(port, "INFO", "replication") or ""
            if "role:slave" in info and f"master_port:{primary}\r" in info:
                return port
        return None

    def node_id(self, port):
        return call(port, "CLUSTER", "MYID")

    def healthy(self):
        for port in self.ports:
            info = call(port, "CLUSTER", "INFO")
            if info is None:
                continue  # a node that is down (the killed one, before its supervisor restarts it)
            if "cluster_state:ok" not in info:
                return False
            replication = call(port, "INFO", "replication") or ""
            if "role:slave" in replication and "master_link_status:up" not in replication:
                return False
        return True

    def cli(self, *arguments):
        result = subprocess.run(["redis-cli", *arguments], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(arguments[:2])}: {result.stdout[-300:]}{result.stderr[-300:]}")


class Load:
    """Signed-in page views in a loop per browser, each recorded with its time, duration and outcome."""

    def __init__(self, browsers):
        self.browsers, self.records, self.stop = browsers, [], threading.Event()
        self.lock = threading.Lock()

    def start(self):
        for name, browser, user in self.browsers:
            threading.Thread(target=self.loop, args=(name, browser, user), daemon=True).start()
        return self

    def loop(self, name, browser, user):
        while not self.stop.is_set():
            started = time.time()
            try:
                status, page = browser.request("GET", "/", timeout=20)
                shown = landing(page) if status == 200 else None
                kind = status if status != 200 else ("ok" if shown and shown[0] == user else "signed out")
            except OSError as error:
                kind = f"connection error {type(error).__name__}"
            with self.lock:
                self.records.append((name, started, time.time() - started, kind))
            time.sleep(0.005)

    def between(self, start, end, name=None):
        with self.lock:
            return [r for r in self.records if start <= r[1] <= end and (name is None or r[0] == name)]


def logout_is_honoured_everywhere(lb, webs, label):
    """A bob session revoked by log out everywhere is signed out on every instance at once."""
    victim, revoker = Browser(lb), Browser(lb)
    if victim.sign_in("bob", "builder") != 303 or revoker.sign_in("bob", "builder") != 303:
        check(f"{label}: bob signs in twice", False)
        return
    status, _ = revoker.request("POST", "/logout-everywhere", {"csrf": revoker.csrf("/sessions")})
    answers = {}
    for web in webs:
        browser = Browser(web)
        browser.cookies = dict(victim.cookies)
        answers[web] = landing(browser.request("GET", "/")[1])
    check(f"{label}: a log out everywhere right after it is honoured by every instance at once",
          status in (200, 303) and all(value is None for value in answers.values()), f"{status} {answers}")


def change_under_load(label, load, action, lb, webs, bob):
    started = time.time()
    action()
    time.sleep(0.5)
    records = load.between(started, time.time())
    kinds = {}
    for record in records:
        kinds[record[3]] = kinds.get(record[3], 0) + 1
    slowest = max((r[2] for r in records), default=0.0)
    check(f"{label}: no failed request under load ({len(records)} page views)", set(kinds) == {"ok"}, kinds)
    check(f"{label}: the slowest page view stayed under 100 ms", slowest < 0.1, f"{slowest * 1000:.1f} ms")
    FIGURES[label] = {"page_views": len(records), "answers": kinds, "slowest_ms": round(slowest * 1000, 1),
                      "took_s": round(time.time() - started - 0.5, 2)}
    print(f"figure: {label}: {len(records)} page views, answers {kinds}, slowest {slowest * 1000:.1f} ms", flush=True)
    logout_is_honoured_everywhere(lb, webs, label)
    # That also signed out the load's own bob session: sign it in again before the next change is measured.
    fresh = Browser(lb)
    fresh.sign_in("bob", "builder")
    bob.cookies = dict(fresh.cookies)
    time.sleep(0.3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", default=STATE)
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    env = rig_env(options.state)
    if env.get("TOPOLOGY") != "cluster":
        sys.exit("cluster-check: the rig is not up with --topology cluster")
    cluster = Cluster([int(p) for p in env["NODE_PORTS"].split()], options.state)
    lb = int(env["LB_PORT"])
    webs = [int(env[f"WEB{n}_PORT"]) for n in (1, 2, 3)]
    check("the cluster is healthy before the faults", wait_until(cluster.healthy, 60, 0.2))

    alice, bob = Browser(lb), Browser(lb)
    check("alice and bob sign in through the load balancer",
          alice.sign_in("alice", "wonderland") == 303 and bob.sign_in("bob", "builder") == 303)
    load = Load([("alice", alice, "alice"), ("bob", bob, "bob")]).start()
    time.sleep(1)

    primaries = cluster.primaries()
    change_under_load("reshard of 100 slots", load, lambda: cluster.cli(
        "--cluster", "reshard", f"127.0.0.1:{primaries[0]}", "--cluster-from", cluster.node_id(primaries[0]),
        "--cluster-to", cluster.node_id(primaries[1]), "--cluster-slots", "100", "--cluster-yes"), lb, webs, bob)

    def failover():
        replica = cluster.replica_of(primaries[2])
        call(replica, "CLUSTER", "FAILOVER")
        wait_until(lambda: (call(replica, "ROLE") or [""])[0] == "master", 10, 0.02)

    change_under_load("CLUSTER FAILOVER", load, failover, lb, webs, bob)
    check("the set is healthy after the failover", wait_until(cluster.healthy, 30, 0.2))

    # A fourth primary, empty at first, then given 100 slots.
    new_port = free_cluster_port()
    node_dir = os.path.join(options.state, f"node-{new_port}")
    os.makedirs(node_dir, exist_ok=True)
    subprocess.Popen(["setsid", "redis-server", "--port", str(new_port), "--bind", "127.0.0.1", "--cluster-enabled",
                      "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                      "--cluster-require-full-coverage", "no", "--save", "", "--dir", node_dir, "--logfile",
                      os.path.join(node_dir, "redis.log")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    with open(os.path.join(options.state, "extra-node-ports"), "a") as file:
        file.write(f"{new_port}\n")
    wait_until(lambda: call(new_port, "PING") == "PONG", 10)
    cluster.cli("--cluster", "add-node", f"127.0.0.1:{new_port}", f"127.0.0.1:{primaries[0]}")
    cluster.ports.append(new_port)
    wait_until(cluster.healthy, 30, 0.2)
    change_under_load("a fourth primary given 100 slots", load, lambda: cluster.cli(
        "--cluster", "reshard", f"127.0.0.1:{primaries[1]}", "--cluster-from", cluster.node_id(primaries[1]),
        "--cluster-to", cluster.node_id(new_port), "--cluster-slots", "100", "--cluster-yes"), lb, webs, bob)
    check("the fourth primary owns slots", new_port in cluster.primaries())

    # kill -9 of alice's primary: only her shard fails, with 503 only, and comes back.
    alice_shard = cluster.owner(user_slot("alice"))
    bob_shard = cluster.owner(user_slot("bob"))
    check("alice's and bob's keys live on different primaries", alice_shard != bob_shard, f"{alice_shard} {bob_shard}")
    check("the cluster is healthy before the kill", wait_until(cluster.healthy, 30, 0.2))
    alice.set_timezone("Asia/Kolkata")
    info = call(alice_shard, "INFO", "server") or ""
    pid = next(int(line.split(":")[1]) for line in info.splitlines() if line.startswith("process_id:"))
    killed = time.time()
    os.kill(pid, 9)
    recovered = wait_until(lambda: any(r[3] == "ok" for r in load.between(killed + 0.05, time.time(), "alice")), 15,
                           0.02)
    time.sleep(1)
    load.stop.set()
    first_ok = min((r[1] + r[2] for r in load.between(killed + 0.05, time.time(), "alice") if r[3] == "ok"),
                   default=None)
    alice_kinds, bob_kinds = {}, {}
    for record in load.between(killed, time.time()):
        target = alice_kinds if record[0] == "alice" else bob_kinds
        target[record[3]] = target.get(record[3], 0) + 1
    check("kill -9: alice's failed requests are 503 only", set(alice_kinds) <= {"ok", 503}, alice_kinds)
    check("kill -9: bob, on another shard, sees no failure", set(bob_kinds) == {"ok"}, bob_kinds)
    recovery = (first_ok - killed) if first_ok else None
    check("kill -9: alice's shard is back within node timeout + 2 s", recovered and recovery is not None and recovery <= 3.0,
          recovery)
    FIGURES["kill"] = {"recovery_s": round(recovery, 2) if recovery else None, "alice": alice_kinds, "bob": bob_kinds}
    print(f"figure: kill -9 of alice's primary: her shard back {recovery if recovery is None else round(recovery, 2)} s "
          f"after the kill; alice {alice_kinds}; bob {bob_kinds}", flush=True)
    shown = {}
    for web in webs:
        browser = Browser(web)
        browser.cookies = dict(alice.cookies)
        page = landing(browser.request("GET", "/")[1])
        shown[web] = page[1] if page else None
    check("after the kill every instance shows alice the timezone she set", set(shown.values()) == {"Asia/Kolkata"},
          shown)
    check("the killed primary comes back as a replica and the cluster heals", wait_until(cluster.healthy, 60, 0.2))
    return finish(options.json)


if __name__ == "__main__":
    sys.exit(main())
