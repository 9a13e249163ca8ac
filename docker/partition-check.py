#!/usr/bin/env python3
"""Two web instances against a Redis behind a network that misbehaves: dropped packets and added latency.

Every fault the rig injects elsewhere is a clean close (a restart, CLIENT KILL). This one is not:
- Redis runs in a network namespace of this script's own, joined to the host by a veth pair on a private /30. No other
  address is ever touched. Instance A reaches it directly. Instance B goes through a delaying TCP proxy written here,
  which adds 50 ms each way (tc netem is not available on these kernels).
- Black hole: the namespace's end of the veth pair goes down for 10 s. Packets are dropped, not refused. Nothing
  answers, and no connection is closed.
- Stall: the proxy holds every byte for 5 s, then delivers them late, including replies to commands that timed out.

It checks:
- Every request finishes within the instance's bound: a 200, or a 503 for a signed-in page. Nothing hangs, and
  nothing is answered as signed out.
- A replayed late reply never reaches the wrong request: each session sees its own user.
- Threads and file descriptors do not pile up.
- Both instances recover after healing, and no session or setting is lost.

It prints the figures (worst request time, time to recover after healing) and "N passed, M failed".
Needs root (CAP_NET_ADMIN) and iproute2. Where namespaces cannot be made it says so and exits 0 with SKIP: the fault
is never faked.

    docker/partition-check.py --webtier PATH/TO/webtier [--blackhole-seconds 10] [--stall-seconds 5]
"""
import argparse
import http.client
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rigkit import Browser, check, figure, finish, landing  # noqa: E402

# The instance's Redis bounds: connect timeout 1 s, command timeout 2 s (RedisConfiguration's defaults, which the
# web tier uses). A request waits for at most one of each, plus the HTTP work.
REQUEST_BOUND = 3.5


def run(*command, namespace=None, check_result=True):
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    return subprocess.run(prefix + list(command), check=check_result, capture_output=True, text=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Network:
    """A namespace with Redis's end of a veth pair; the host keeps the other end. Removed on exit."""

    def __init__(self):
        tag = os.getpid() % 100000
        self.namespace = f"rsess-part-{tag}"
        self.host_link, self.inner_link = f"rsph{tag}", f"rspn{tag}"
        used = run("ip", "-4", "addr").stdout
        third = next(n for n in range(1, 255) if f"10.213.{n}." not in used)
        self.host_address, self.redis_address = f"10.213.{third}.1", f"10.213.{third}.2"

    def create(self):
        run("ip", "netns", "add", self.namespace)
        run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
        run("ip", "link", "set", self.inner_link, "netns", self.namespace)
        run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        run("ip", "link", "set", self.host_link, "up")
        run("ip", "addr", "add", f"{self.redis_address}/30", "dev", self.inner_link, namespace=self.namespace)
        run("ip", "link", "set", self.inner_link, "up", namespace=self.namespace)
        run("ip", "link", "set", "lo", "up", namespace=self.namespace)

    def black_hole(self, on):
        # The far end goes down: the host's end loses carrier and drops what it sends, and nothing comes back.
        # (Taking the host's own end down would remove the route and refuse at once, which is not the fault.)
        run("ip", "link", "set", self.inner_link, "down" if on else "up", namespace=self.namespace)

    def remove(self):
        run("ip", "link", "del", self.host_link, check_result=False)
        run("ip", "netns", "del", self.namespace, check_result=False)


class DelayingProxy:
    """Forwards TCP with a fixed delay per direction; `stalled` holds every byte until it is cleared."""

    def __init__(self, target, delay):
        self.target, self.delay = target, delay
        self.stalled = threading.Event()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.connect, args=(client,), daemon=True).start()

    def connect(self, client):
        try:
            server = socket.create_connection(self.target, timeout=5)
            server.settimeout(None)
        except OSError:
            client.close()
            return
        for source, destination in ((client, server), (server, client)):
            pending = queue.Queue()
            threading.Thread(target=self.read, args=(source, pending), daemon=True).start()
            threading.Thread(target=self.write, args=(destination, pending, source), daemon=True).start()

    def read(self, source, pending):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            pending.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def write(self, destination, pending, source):
        while True:
            due, data = pending.get()
            while self.stalled.is_set() or time.monotonic() < due:
                time.sleep(min(0.005, max(0.0, due - time.monotonic())) or 0.005)
            try:
                if not data:
                    destination.shutdown(socket.SHUT_WR)
                    return
                destination.sendall(data)
            except OSError:
                source.close()
                destination.close()
                return


class Load:
    """Signed-in page views in a loop per browser; every request is recorded with its time and outcome."""

    def __init__(self, browsers):
        self.browsers, self.records, self.stop = browsers, [], threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(b,), daemon=True) for b in browsers]

    def start(self):
        for thread in self.threads:
            thread.start()

    def loop(self, browser):
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status, page = browser.request("GET", "/", timeout=30)
                shown = landing(page) if status == 200 else None
            except OSError as error:
                status, shown = f"error {error}", None
            with self.lock:
                self.records.append((browser, started, time.monotonic() - started, status, shown))
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)

    def between(self, start, end, browsers=None):
        with self.lock:
            return [r for r in self.records if start <= r[1] < end and (browsers is None or r[0] in browsers)]


class Process:
    """An instance's process: sampled for threads and open descriptors."""

    def __init__(self, pid):
        self.pid, self.samples = pid, []

    def sample(self):
        try:
            threads = len(os.listdir(f"/proc/{self.pid}/task"))
            descriptors = len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return
        self.samples.append((time.monotonic(), threads, descriptors))

    def peak(self, start, end):
        inside = [s for s in self.samples if start <= s[0] <= end]
        return (max(s[1] for s in inside), max(s[2] for s in inside)) if inside else (0, 0)


def wait_healthy(port, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def recovery_time(load, browsers, healed, expected):
    """Seconds from healing until every later request of these browsers showed the right user."""
    records = sorted(load.between(healed, float("inf"), browsers), key=lambda r: r[1])
    last_bad = healed
    for browser, started, duration, status, shown in records:
        if status != 200 or shown != expected[browser]:
            last_bad = started + duration
    return last_bad - healed


def judge_fault(name, load, browsers, start, end, expected):
    records = load.between(start, end, browsers)
    worst = max((r[2] for r in records), default=0.0)
    statuses = {}
    for record in records:
        statuses[record[3]] = statuses.get(record[3], 0) + 1
    wrong_user = [r for r in records if r[3] == 200 and r[4] != expected[r[0]]]
    other = {k: v for k, v in statuses.items() if k not in (200, 503)}
    check(f"{name}: {len(records)} requests during the fault, each a 200 or a 503", not other and records, str(statuses))
    check(f"{name}: no request was answered as another user or as signed out", not wrong_user,
          f"{len(wrong_user)} such, e.g. {wrong_user[:1]}")
    check(f"{name}: every request finished within {REQUEST_BOUND} s", worst <= REQUEST_BOUND, f"worst {worst:.2f} s")
    # When each instance last answered from its caches: they may serve only until the lost link is detected.
    for port in sorted({b.port for b in browsers}):
        served = [r[1] - start for r in records if r[0].port == port and r[3] == 200]
        failed = [r[1] - start for r in records if r[0].port == port and r[3] != 200]
        figure(f"{name}, instance on port {port}: 200s from {min(served, default=0):.1f} to "
               f"{max(served, default=0):.1f} s into the fault, other answers from {min(failed, default=0):.1f} to "
               f"{max(failed, default=0):.1f} s")
    return worst, statuses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webtier", required=True, help="path of the webtier binary")
    parser.add_argument("--blackhole-seconds", type=float, default=10)
    parser.add_argument("--stall-seconds", type=float, default=5)
    options = parser.parse_args()
    if not os.access(options.webtier, os.X_OK):
        sys.exit(f"partition-check: {options.webtier} is not an executable webtier binary")

    network = Network()
    try:
        network.create()
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        network.remove()
        reason = getattr(error, "stderr", "") or str(error)
        print(f"SKIP  this sandbox cannot create network namespaces and veth pairs: {reason.strip()}")
        return 0

    children = []

    def cleanup(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
        network.remove()

    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))
    try:
        return scenario(options, network, children)
    finally:
        cleanup()


def scenario(options, network, children):
    redis_port = 6379
    log_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".rig", "partition")
    os.makedirs(log_dir, exist_ok=True)
    children.append(subprocess.Popen(
        ["ip", "netns", "exec", network.namespace, "redis-server", "--port", str(redis_port), "--bind",
         network.redis_address, "--protected-mode", "no", "--save", "", "--appendonly", "no",
         "--logfile", os.path.join(log_dir, "redis.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    proxy = DelayingProxy((network.redis_address, redis_port), delay=0.05)
    instances = {}
    for name, url in (("A", f"redis://{network.redis_address}:{redis_port}"),
                      ("B", f"redis://127.0.0.1:{proxy.port}")):
        port = free_port()
        environment = dict(os.environ, HOST="127.0.0.1", PORT=str(port), REDIS_URL=url, INSTANCE_ID=f"part-{name}",
                           SEED_DEMO_USERS="1", LOG_LEVEL="warning")
        child = subprocess.Popen([options.webtier], env=environment, stdout=open(os.path.join(log_dir, f"{name}.log"), "w"),
                                 stderr=subprocess.STDOUT)
        children.append(child)
        instances[name] = (port, Process(child.pid))
    for name, (port, _) in instances.items():
        if not wait_healthy(port):
            check(f"instance {name} became healthy", False, f"see {log_dir}/{name}.log")
            return 1
    print(f"partition-check: redis {network.redis_address}:{redis_port} in namespace {network.namespace}; "
          f"instance A direct, instance B through a proxy adding 50 ms each way", flush=True)

    # Signed-in users with settings of their own, on both instances.
    alice_a, bob_a = Browser(instances["A"][0]), Browser(instances["A"][0])
    alice_b, bob_b = Browser(instances["B"][0]), Browser(instances["B"][0])
    for browser, user, password in ((alice_a, "alice", "wonderland"), (bob_a, "bob", "builder"),
                                    (alice_b, "alice", "wonderland"), (bob_b, "bob", "builder")):
        check(f"{user} signs in on instance {'A' if browser.port == instances['A'][0] else 'B'}",
              browser.sign_in(user, password) == 303)
    check("alice sets Asia/Tokyo", alice_a.set_timezone("Asia/Tokyo") == 303)
    check("bob sets America/Chicago", bob_b.set_timezone("America/Chicago") == 303)
    expected = {alice_a: ("alice", "Asia/Tokyo"), alice_b: ("alice", "Asia/Tokyo"),
                bob_a: ("bob", "America/Chicago"), bob_b: ("bob", "America/Chicago")}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(landing(b.request("GET", "/")[1]) != e for b, e in expected.items()):
        time.sleep(0.05)
    check("both instances show each user their own timezone before any fault",
          all(landing(b.request("GET", "/")[1]) == e for b, e in expected.items()))

    load = Load(list(expected))
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            for _, process in instances.values():
                process.sample()
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    load.start()
    time.sleep(3)
    baseline_end = time.monotonic()
    baseline = {name: process.peak(baseline_end - 3, baseline_end) for name, (_, process) in instances.items()}
    proxied = sorted(r[2] for r in load.between(baseline_end - 3, baseline_end, [alice_b, bob_b]) if r[3] == 200)
    if proxied:
        figure(f"instance B through 50 ms each way, before any fault: {len(proxied)} page views, "
              f"p50 {proxied[len(proxied) // 2] * 1000:.1f} ms, max {proxied[-1] * 1000:.1f} ms "
              "(session and settings caches answer most of them)")

    # 1. A black hole for both instances.
    started = time.monotonic()
    network.black_hole(True)
    time.sleep(options.blackhole_seconds)
    network.black_hole(False)
    healed = time.monotonic()
    worst, statuses = judge_fault(f"black hole {options.blackhole_seconds:.0f} s", load, list(expected), started, healed, expected)
    time.sleep(8)
    recovered = {name: recovery_time(load, [b for b in expected if b.port == port], healed, expected)
                 for name, (port, _) in instances.items()}
    check("black hole: both instances serve every user correctly again within 5 s of healing",
          all(seconds <= 5 for seconds in recovered.values()), str(recovered))
    figure(f"black hole {options.blackhole_seconds:.0f} s: worst request {worst:.2f} s, answers {statuses}; "
           f"recovered {recovered['A']:.2f} s (A, direct) and {recovered['B']:.2f} s (B, proxied) after healing")
    for name, (_, process) in instances.items():
        threads, descriptors = process.peak(started, time.monotonic())
        check(f"black hole: instance {name}'s threads and descriptors did not pile up "
              f"(peak {threads} threads, {descriptors} fds; before {baseline[name][0]}, {baseline[name][1]})",
              threads <= baseline[name][0] + 4 and descriptors <= baseline[name][1] + 16)

    # 2. A stall on B's path only: bytes held, then delivered late (replies to commands that already timed out).
    started = time.monotonic()
    proxy.stalled.set()
    time.sleep(options.stall_seconds)
    proxy.stalled.clear()
    healed = time.monotonic()
    b_browsers = [alice_b, bob_b]
    worst_b, statuses_b = judge_fault(f"stall {options.stall_seconds:.0f} s", load, b_browsers, started, healed, expected)
    unaffected = load.between(started, healed, [alice_a, bob_a])
    check("stall: instance A, on a healthy path, kept answering 200 throughout",
          unaffected and all(r[3] == 200 for r in unaffected), str({r[3] for r in unaffected}))
    time.sleep(6)
    recovered_b = recovery_time(load, b_browsers, healed, expected)
    check("stall: instance B serves every user correctly again within 5 s", recovered_b <= 5, f"{recovered_b:.2f} s")
    after = load.between(healed, time.monotonic(), b_browsers)
    check("stall: no late reply reached the wrong request after the stall",
          all(r[4] == expected[r[0]] for r in after if r[3] == 200))
    figure(f"stall {options.stall_seconds:.0f} s on B's path: worst request {worst_b:.2f} s, answers {statuses_b}; "
           f"recovered {recovered_b:.2f} s after the bytes flowed again")
    for name, (_, process) in instances.items():
        threads, descriptors = process.peak(healed, time.monotonic())
        check(f"after both faults instance {name} is back to {threads} threads and {descriptors} fds "
              f"(before {baseline[name][0]}, {baseline[name][1]})",
              threads <= baseline[name][0] + 2 and descriptors <= baseline[name][1] + 8)

    load.finish()
    sampling.set()
    # Nothing was lost: every session still signed in with its setting, and a new change still propagates.
    check("after healing every session is still signed in with its own timezone on both instances",
          all(landing(b.request("GET", "/")[1]) == e for b, e in expected.items()))
    check("alice changes her timezone on B after healing", alice_b.set_timezone("Europe/Berlin") == 303)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and landing(alice_a.request("GET", "/")[1]) != ("alice", "Europe/Berlin"):
        time.sleep(0.02)
    check("and instance A shows it within 2 s (events flow again)",
          landing(alice_a.request("GET", "/")[1]) == ("alice", "Europe/Berlin"))
    return finish()


if __name__ == "__main__":
    sys.exit(main())
