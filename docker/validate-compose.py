#!/usr/bin/env python3
"""Static checks of the docker rig: no Docker engine runs on the development machines or in CI, so
`docker compose config` cannot run. This parses docker-compose.yml (PyYAML, merge keys resolved), the Dockerfile
and the nginx template, and checks that they describe the topology the process twin (docker/rig) runs.
Prints one line per check and 'N passed, M failed'; exits 1 on any failure.
With `--environment SERVICE` it prints that service's environment instead (docker/rig starts the instances with it)."""
import os
import re
import sys

import yaml


class Override(dict):
    """Compose's `!override` tag: this value replaces the base file's instead of merging with it."""


yaml.SafeLoader.add_constructor("!override", lambda loader, node: Override(loader.construct_mapping(node, deep=True)))

here = os.path.dirname(os.path.abspath(__file__))
results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(("ok    " if condition else "FAIL  ") + name + ("" if condition or not detail else ": " + detail))


with open(os.path.join(here, "docker-compose.yml")) as handle:
    compose = yaml.safe_load(handle)
services = compose.get("services", {})


def environment_of(service):
    """A service's environment as a dict, whether the file writes it as a mapping or as a list of KEY=VALUE."""
    env = (services.get(service) or {}).get("environment") or {}
    if isinstance(env, list):
        return dict(str(item).split("=", 1) for item in env if "=" in str(item))
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


# `--environment SERVICE` prints that service's environment, one KEY=VALUE per line, for docker/rig to start its
# process with the very settings the compose file gives the container.
if sys.argv[1:2] == ["--environment"]:
    if len(sys.argv) != 3 or sys.argv[2] not in services:
        sys.exit(f"usage: validate-compose.py --environment SERVICE (one of {', '.join(sorted(services))})")
    for key, value in environment_of(sys.argv[2]).items():
        print(f"{key}={value}")
    sys.exit(0)
expected = {"redis", "web1", "web2", "web3", "lb", "listener", "check"}
check("compose parses and defines redis, web1..web3, lb, listener, check", expected <= set(services),
      f"services: {sorted(services)}")

redis = services.get("redis", {})
check("redis uses the official image, Redis 7 unless REDIS_IMAGE names another (Valkey 8)", str(redis.get("image", "")) == "${REDIS_IMAGE:-redis:7}")
check("redis has a healthcheck", "test" in (redis.get("healthcheck") or {}))
check("redis is restarted by compose (the checker stops it with SHUTDOWN)", redis.get("restart") == "always")
check("redis persists with the append-only file", "--appendonly" in (redis.get("command") or []))

instance_ids = set()
for name in ("web1", "web2", "web3"):
    web = services.get(name, {})
    build = web.get("build") or {}
    dockerfile = os.path.normpath(os.path.join(here, build.get("context", "."), build.get("dockerfile", "Dockerfile")))
    check(f"{name} is built by docker/Dockerfile", dockerfile == os.path.join(here, "Dockerfile") and os.path.isfile(dockerfile),
          dockerfile)
    env = environment_of(name)
    check(f"{name} reaches redis by service name", env.get("REDIS_URL") == "redis://redis:6379", str(env.get("REDIS_URL")))
    instance_ids.add(env.get("INSTANCE_ID"))
    depends = web.get("depends_on") or {}
    check(f"{name} waits for a healthy redis", (depends.get("redis") or {}).get("condition") == "service_healthy")
    check(f"{name} has a health check on /healthz", "/healthz" in " ".join((web.get("healthcheck") or {}).get("test", [])))
check("every instance has its own INSTANCE_ID", instance_ids == {"web1", "web2", "web3"}, str(instance_ids))

# The trust boundary: X-Forwarded-For from the load balancer only, the operations endpoints on an unpublished port.
lb_address = (((services.get("lb") or {}).get("networks") or {}).get("default") or {}).get("ipv4_address")
subnets = [entry.get("subnet") for entry in ((((compose.get("networks") or {}).get("default") or {}).get("ipam") or {})
                                             .get("config") or [])]
check("lb has a fixed address in the rig's fixed subnet", lb_address == "172.30.0.10" and "172.30.0.0/24" in subnets,
      f"{lb_address} in {subnets}")
for name in ("web1", "web2", "web3"):
    env = environment_of(name)
    check(f"{name} trusts X-Forwarded-For from the load balancer only", env.get("TRUSTED_PROXIES") == lb_address,
          str(env.get("TRUSTED_PROXIES")))
    check(f"{name} serves /stats and /metrics on its admin port, unpublished",
          env.get("ADMIN_PORT") == "9090" and not (services.get(name) or {}).get("ports"))

lb = services.get("lb", {})
check("lb runs nginx", str(lb.get("image", "")).startswith("nginx"))
mounts = [str(volume) for volume in lb.get("volumes") or []]
check("lb mounts docker/nginx.conf as a template", any(m.startswith("./nginx.conf:/etc/nginx/templates/") for m in mounts), str(mounts))
lb_env = lb.get("environment") or {}
check("lb's upstreams are the three instances", [lb_env.get(k) for k in ("WEB1", "WEB2", "WEB3")] == ["web1:8080", "web2:8080", "web3:8080"])
check("lb publishes a port", bool(lb.get("ports")))

listener = " ".join(str(part) for part in services.get("listener", {}).get("command") or [])
check("listener runs session-listen --json into the shared log", "session-listen" in listener and "--json" in listener and "/rig/listener.log" in listener)
command = [str(part) for part in services.get("check", {}).get("command") or []]
check("check runs rig-check against lb and every instance",
      command[:1] == ["rig-check"] and "http://lb:80" in command and all(f"http://web{n}:8080" in command for n in (1, 2, 3)),
      " ".join(command))
check("check reads the listener's log", "/rig/listener.log" in command)
check("check expects session affinity at the load balancer (as nginx.conf routes)", "--affinity" in command)
check("check reads /stats from every instance's admin listener",
      all(f"http://web{n}:9090" in command for n in (1, 2, 3)) and command.count("--admin") == 3)

declared_volumes = set((compose.get("volumes") or {}).keys())
for name, service in services.items():
    for target in (service.get("depends_on") or {}):
        check(f"{name} depends on an existing service ({target})", target in services)
    for volume in service.get("volumes") or []:
        source = str(volume).split(":")[0]
        if not source.startswith("."):
            check(f"{name}'s volume {source} is declared", source in declared_volumes)

with open(os.path.join(here, "Dockerfile")) as handle:
    dockerfile = handle.read()
stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.MULTILINE | re.IGNORECASE)
check("Dockerfile is a multi-stage build", len(stages) >= 2, str(stages))
check("the build stage is a Swift toolchain image with libhiredis-dev", stages and stages[0][0].startswith("swift:") and "libhiredis-dev" in dockerfile)
check("the runtime stage is slim with the hiredis runtime", len(stages) >= 2 and "slim" in stages[-1][0] and "libhiredis0.14" in dockerfile)
for binary in ("webtier", "session-listen", "rig-check"):
    check(f"the image ships {binary}", binary in dockerfile)

with open(os.path.join(here, "nginx.conf")) as handle:
    template = handle.read()
check("nginx.conf is a template with the three upstreams and the port",
      all(f"${{{name}}}" in template for name in ("WEB1", "WEB2", "WEB3", "LB_PORT")))
check("nginx.conf balances over an upstream", "upstream webtier" in template and "proxy_pass http://webtier" in template)
check("nginx.conf routes by the session cookie with consistent hashing, the line docker/rig drops without --affinity",
      re.search(r"^\s*hash \$rsess_affinity consistent;\s*# affinity: docker/rig deletes", template, re.MULTILINE) is not None
      and "map $http_cookie $rsess_affinity" in template)
check("nginx.conf names no version (server_tokens off)", re.search(r"^\s*server_tokens\s+off;", template, re.MULTILINE) is not None)

# The TLS override (docker-compose.tls.yml), merged onto the base file as `docker compose -f ... -f ...` does:
# mappings merge, `command` and `healthcheck.test` are replaced, volumes merge by their target path.
def merged(base, override, key=""):
    if isinstance(override, Override):
        return dict(override)
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for name, value in override.items():
            result[name] = merged(base.get(name), value, name) if name in base else value
        return result
    if key == "volumes" and isinstance(base, list) and isinstance(override, list):
        by_target = {str(v).split(":")[1] if ":" in str(v) else str(v): v for v in base}
        by_target.update({str(v).split(":")[1] if ":" in str(v) else str(v): v for v in override})
        return list(by_target.values())
    return override


with open(os.path.join(here, "docker-compose.tls.yml")) as handle:
    tls_override = yaml.safe_load(handle)
tls = merged(compose, tls_override)
tls_services = tls.get("services", {})
tls_redis = [str(part) for part in tls_services.get("redis", {}).get("command") or []]
check("tls: redis has no plaintext port and a TLS port with its certificate",
      "--port" in tls_redis and tls_redis[tls_redis.index("--port") + 1] == "0" and "--tls-port" in tls_redis
      and "--tls-cert-file" in tls_redis, " ".join(tls_redis))
check("tls: redis's health check speaks TLS", "--tls" in (tls_services.get("redis", {}).get("healthcheck") or {}).get("test", []))
check("tls: redis still persists with the append-only file", "--appendonly" in tls_redis)
check("tls: the certificates come from make-tls-certs in a one-shot service",
      "make-tls-certs" in " ".join(str(p) for p in tls_services.get("tls-certs", {}).get("command") or []))
tls_url = "rediss://redis:6379?ca=/tls/ca.crt"
for name in ("web1", "web2", "web3", "listener", "check"):
    service = tls_services.get(name, {})
    text = " ".join(str(part) for part in service.get("command") or []) + " " + " ".join(
        f"{k}={v}" for k, v in (service.get("environment") or {}).items())
    check(f"tls: {name} reaches redis with rediss:// and the rig's CA", tls_url in text, text)
    check(f"tls: {name} keeps no plaintext redis:// URL and no tunnel", "redis://redis" not in text and "tunnel=" not in text, text)
    check(f"tls: {name} mounts the CA it trusts", "tls:/tls:ro" in [str(v) for v in service.get("volumes") or []])
check("tls: no stunnel sidecar is left", not any("stunnel" in " ".join(str(p) for p in (service.get("command") or []))
                                                  for service in tls_services.values()))
tls_volumes = set((tls.get("volumes") or {}).keys())
for name, service in tls_services.items():
    for volume in service.get("volumes") or []:
        source = str(volume).split(":")[0]
        if not source.startswith("."):
            check(f"tls: {name}'s volume {source} is declared", source in tls_volumes)
check("the image has libssl3 for the client's TLS, and make-tls-certs for the rig's CA",
      "libssl3" in dockerfile and "scripts/make-tls-certs" in dockerfile and "stunnel" not in dockerfile)

# The Sentinel override (docker-compose.sentinel.yml), merged the same way.
with open(os.path.join(here, "docker-compose.sentinel.yml")) as handle:
    sentinel = merged(compose, yaml.safe_load(handle))
sentinel_services = sentinel.get("services", {})
sentinel_url = "redis-sentinel://sentinel1:26379,sentinel2:26379,sentinel3:26379/rsess"
replica = [str(p) for p in sentinel_services.get("redis-replica", {}).get("command") or []]
check("sentinel: a replica of redis with its own health check",
      "--replicaof" in replica and replica[replica.index("--replicaof") + 1] == "redis"
      and "test" in (sentinel_services.get("redis-replica", {}).get("healthcheck") or {}))
for name in ("sentinel1", "sentinel2", "sentinel3"):
    text = " ".join(str(p) for p in sentinel_services.get(name, {}).get("command") or [])
    check(f"sentinel: {name} runs redis-server --sentinel monitoring redis with down-after 1000 ms",
          "--sentinel" in text and "sentinel monitor rsess redis 6379 2" in text and "down-after-milliseconds rsess 1000" in text)
    check(f"sentinel: {name} resolves and announces host names", "resolve-hostnames yes" in text and "announce-hostnames yes" in text)
for name in ("web1", "web2", "web3", "listener", "check"):
    service = sentinel_services.get(name, {})
    text = " ".join(str(part) for part in service.get("command") or []) + " " + " ".join(
        f"{k}={v}" for k, v in (service.get("environment") or {}).items())
    check(f"sentinel: {name} finds the master through the three sentinels", sentinel_url in text, text)
    check(f"sentinel: {name} keeps no direct redis:// URL", "redis://redis" not in text, text)
check("sentinel: the checker does not restart Redis by hand (a restart is a failover here)",
      "none" in [str(p) for p in sentinel_services.get("check", {}).get("command") or []])
sentinel_volumes = set((sentinel.get("volumes") or {}).keys())
for name, service in sentinel_services.items():
    for target in (service.get("depends_on") or {}):
        check(f"sentinel: {name} depends on an existing service ({target})", target in sentinel_services)
    for volume in service.get("volumes") or []:
        source = str(volume).split(":")[0]
        if not source.startswith("."):
            check(f"sentinel: {name}'s volume {source} is declared", source in sentinel_volumes)

# The Redis Cluster override (docker-compose.cluster.yml).
with open(os.path.join(here, "docker-compose.cluster.yml")) as handle:
    clustered = merged(compose, yaml.safe_load(handle))
cluster_services = clustered.get("services", {})
nodes = [f"redis-{n}" for n in range(1, 7)]
for name in nodes:
    text = " ".join(str(p) for p in cluster_services.get(name, {}).get("command") or [])
    check(f"cluster: {name} is a cluster node with a 1 s node timeout that announces its host name",
          "--cluster-enabled yes" in text and "--cluster-node-timeout 1000" in text
          and "--cluster-announce-hostname" in text and "--cluster-require-full-coverage no" in text, text)
create = " ".join(str(p) for p in cluster_services.get("cluster-create", {}).get("command") or [])
check("cluster: a one-shot service creates 3 primaries with a replica each",
      "--cluster create" in create and all(f"{n}:6379" in create for n in nodes) and "--cluster-replicas 1" in create)
check("cluster: the base file's standalone redis is left out", "standalone-only" in (cluster_services.get("redis", {}).get("profiles") or []))
cluster_url = "redis-cluster://redis-1:6379,redis-2:6379,redis-3:6379"
for name in ("web1", "web2", "web3", "listener", "check"):
    service = cluster_services.get(name, {})
    text = " ".join(str(part) for part in service.get("command") or []) + " " + " ".join(
        f"{k}={v}" for k, v in (service.get("environment") or {}).items())
    check(f"cluster: {name} shards through the cluster's seeds", cluster_url in text, text)
    check(f"cluster: {name} keeps no standalone redis:// URL", "redis://redis" not in text, text)
    depends = service.get("depends_on") or {}
    check(f"cluster: {name} waits for the cluster, not for the standalone redis",
          name == "check" or ("cluster-create" in depends and "redis" not in depends), str(depends))
for name, service in cluster_services.items():
    for target in (service.get("depends_on") or {}):
        check(f"cluster: {name} depends on an existing service ({target})", target in cluster_services)

# The TLS cluster override (docker-compose.cluster-tls.yml), merged onto the cluster one.
with open(os.path.join(here, "docker-compose.cluster-tls.yml")) as handle:
    tls_cluster = merged(clustered, yaml.safe_load(handle))
tls_cluster_services = tls_cluster.get("services", {})
for name in nodes:
    text = " ".join(str(p) for p in tls_cluster_services.get(name, {}).get("command") or [])
    check(f"cluster-tls: {name} is TLS-only, on the bus and for replication too",
          "--port 0" in text and "--tls-port 6379" in text and "--tls-cluster yes" in text
          and "--tls-replication yes" in text and "--cluster-enabled yes" in text, text)
    check(f"cluster-tls: {name}'s health check speaks TLS",
          "--tls" in (tls_cluster_services.get(name, {}).get("healthcheck") or {}).get("test", []))
tls_create = " ".join(str(p) for p in tls_cluster_services.get("cluster-create", {}).get("command") or [])
check("cluster-tls: the cluster is created over TLS", "--tls" in tls_create and "--cluster create" in tls_create)
certs = " ".join(str(p) for p in tls_cluster_services.get("tls-certs", {}).get("command") or [])
check("cluster-tls: one certificate names every node", all(n in certs for n in nodes))
tls_cluster_url = "rediss-cluster://redis-1:6379,redis-2:6379,redis-3:6379?ca=/tls/ca.crt"
for name in ("web1", "web2", "web3", "listener", "check"):
    service = tls_cluster_services.get(name, {})
    text = " ".join(str(part) for part in service.get("command") or []) + " " + " ".join(
        f"{k}={v}" for k, v in (service.get("environment") or {}).items())
    check(f"cluster-tls: {name} shards with rediss-cluster:// and the rig's CA", tls_cluster_url in text, text)
    check(f"cluster-tls: {name} keeps no plaintext URL", "redis-cluster://" not in text and "redis://" not in text, text)
tls_cluster_volumes = set((tls_cluster.get("volumes") or {}).keys())
for name, service in tls_cluster_services.items():
    for volume in service.get("volumes") or []:
        source = str(volume).split(":")[0]
        if not source.startswith("."):
            check(f"cluster-tls: {name}'s volume {source} is declared", source in tls_cluster_volumes)
    for target in (service.get("depends_on") or {}):
        check(f"cluster-tls: {name} depends on an existing service ({target})", target in tls_cluster_services)

# The server image is one variable across the files: Redis 7 by default, Valkey 8 as the documented choice.
for file in ("docker-compose.yml", "docker-compose.sentinel.yml", "docker-compose.cluster.yml", "docker-compose.cluster-tls.yml"):
    with open(os.path.join(here, file)) as handle:
        text = handle.read()
    images = re.findall(r"^\s*image:\s*(\S+)", text, re.MULTILINE)
    server_images = [image for image in images if "redis" in image and "rsess" not in image]
    check(f"{file}: every server image is ${{REDIS_IMAGE:-redis:7}}",
          server_images and all(image == "${REDIS_IMAGE:-redis:7}" for image in server_images), str(images))
with open(os.path.join(here, "docker-compose.yml")) as handle:
    check("docker-compose.yml documents Valkey 8 as the other server image", "REDIS_IMAGE=valkey/valkey:8" in handle.read())

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
