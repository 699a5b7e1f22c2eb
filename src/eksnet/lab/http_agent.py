"""The lab's HTTP: a target's server, an ALB node's proxy, a client (one request each).

Run as a plain script inside a namespace (`python3 -I -S http_agent.py MODE …` under `ip netns
exec`), standard library only, like `agent.py`. It prints JSON lines: `{"ready": true}` once
listening, then what happened.

* `serve ADDR PORT`: accept one request, answer `200 ok`, report the request line, the headers
  and the peer it came from.
* `proxy ADDR PORT RULES`: the ALB node (aws-load-balancers.md §2.3), a real proxy: accept the
  client, read its request, take the first rule (lowest priority number) whose conditions it
  meets, the default last, as §1.4 says ALBs match (hosts case-insensitive, `*.example.com`
  one more label; paths case-sensitive globs, `*` any run, `?` one character, the query not
  part of the path). A fixed response is answered here; a forward goes to one of the rule's
  targets at random, on a connection of the proxy's own from its address, with
  `X-Forwarded-For` (appended to the client's, or made), `-Proto` and `-Port`; the target's
  answer goes back to the client. RULES is JSON: `[{"host": …, "paths": […], "targets":
  [[ip, port], …]} | {"status": 404}, …]` in priority order.
* `get SRC ADDR PORT HOST PATH`: send `GET PATH` with `Host: HOST`, report the status.
* `servers SPEC`: what a node or pod of a real cluster listens on for health checks, on every
  address, until stopped. SPEC is JSON: `[{"port": P, "answer": "app"} | {"port": P, "answer":
  "kube-proxy", "namespace": …, "name": …, "endpoints": N}, …]`. `app` is a backend pod's
  server: it accepts a connection (a TCP check closes it at once) and answers a request `200
  ok`. `kube-proxy` is kube-proxy's health server for one Service's `healthCheckNodePort`
  (pkg/proxy/healthcheck/service_health.go, `hcHandler.ServeHTTP`): `application/json` with
  `X-Content-Type-Options: nosniff`, 200 when the node has a local endpoint (and kube-proxy is
  healthy, as the lab's is), else 503, and its body `{"service": {"namespace", "name"},
  "localEndpoints", "serviceProxyHealthy"}` tab-indented as Go's dedented template prints it.
  Each request answered is reported as a JSON line.
* `probe SRC CHECKS`: a load balancer node's health checks, from its address SRC: for each
  check (JSON `[{"key", "protocol": "TCP" | "HTTP", "address", "port", "path", "host",
  "matcher": [[low, high], …], "count", "timeout"}, …]`, all at once, each one's `count`
  attempts in a row) a TCP connect, or an HTTP GET whose status must be in the matcher; one
  JSON line per check with every attempt (status, error, the source port the kernel picked).

This is the lab's own realization of an ALB from the same rules the simulator reads, written
apart from `walk/load_balancing.py`: the two must agree on which target group a request goes
to, so one is held to the other.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import random
import socket
import sys
import time

LIMIT = 65536


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < LIMIT:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _parse(head: bytes) -> tuple[str, dict[str, str]]:
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    line, *rest = text.split("\r\n")
    headers: dict[str, str] = {}
    for item in rest:
        name, _, value = item.partition(":")
        headers[name.strip().lower()] = value.strip()
    return line, headers


def _listening(address: str, port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(4)
    return server


def _accepted(address: str, port: int, timeout: float) -> tuple[socket.socket, str] | None:
    """Listen, say ready, and take the one connection a check or a client opens (None, said
    `received: false`, if none comes within `timeout`); with its peer's address."""
    with _listening(address, port) as server:
        server.settimeout(timeout)
        _emit(ready=True)
        try:
            conn, peer = server.accept()
        except OSError:
            _emit(received=False)
            return None
    conn.settimeout(timeout)
    return conn, f"{peer[0]}:{peer[1]}"


def serve(address: str, port: int, timeout: float) -> None:
    accepted = _accepted(address, port, timeout)
    if accepted is None:
        return
    conn, peer = accepted
    with conn:
        line, headers = _parse(_read_head(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        _emit(received=True, peer=peer, request=line, headers=headers)


def _host_matches(pattern: str, host: str | None) -> bool:
    if host is None:
        return False
    host, pattern = host.lower().split(":")[0], pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return host == pattern


def _rule(rules: list[dict[str, object]], host: str | None, path: str) -> dict[str, object]:
    path = path.split("?")[0]
    for rule in rules:
        if "status" in rule:
            return rule
        wanted = rule.get("host")
        if isinstance(wanted, str) and not _host_matches(wanted, host):
            continue
        paths = rule.get("paths") or []
        assert isinstance(paths, list)
        if paths and not any(fnmatch.fnmatchcase(path, p.replace("[", "[[]")) for p in paths):
            continue
        return rule
    return {"status": 404}


def proxy(address: str, port: int, rules: list[dict[str, object]], timeout: float) -> None:
    accepted = _accepted(address, port, timeout)
    if accepted is None:
        return
    conn, peer = accepted
    client = peer.split(":")[0]
    with conn:
        head = _read_head(conn)
        line, headers = _parse(head)
        parts = line.split()
        path = parts[1] if len(parts) > 1 else "/"
        rule = _rule(rules, headers.get("host"), path)
        if "status" in rule:
            status = int(str(rule["status"]))
            conn.sendall(
                f"HTTP/1.1 {status} Not Found\r\nContent-Type: text/plain\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            _emit(received=True, answered=status)
            return
        targets = rule["targets"]
        assert isinstance(targets, list)
        target_ip, target_port = random.choice(targets)
        forwarded = headers.get("x-forwarded-for")
        chain = f"{forwarded}, {client}" if forwarded else client
        lines = [line] + [
            f"{name}: {value}"
            for name, value in headers.items()
            if name not in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-port")
        ]
        lines += [
            f"X-Forwarded-For: {chain}",
            "X-Forwarded-Proto: http",
            f"X-Forwarded-Port: {port}",
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with socket.create_connection(
            (target_ip, int(target_port)), timeout=timeout, source_address=(address, 0)
        ) as upstream:
            upstream.sendall(request)
            answer = b""
            while chunk := upstream.recv(4096):
                answer += chunk
        conn.sendall(answer)
        _emit(received=True, target=f"{target_ip}:{target_port}")


def get(src: str, address: str, port: int, host: str, path: str, timeout: float) -> None:
    started = time.time()
    try:
        with socket.create_connection(
            (address, port), timeout=timeout, source_address=(src, 0)
        ) as conn:
            conn.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
    except OSError as error:
        _emit(ok=False, error=str(error), at=started)
        return
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "?"
    _emit(ok=True, status=int(status) if status.isdigit() else 0, at=started)


REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def health_body(namespace: str, name: str, endpoints: int, healthy: bool = True) -> str:
    """kube-proxy's answer body: its template after `dedent.Dedent` and trimming newlines."""
    return (
        "{\n"
        '\t"service": {\n'
        f'\t\t"namespace": {json.dumps(namespace)},\n'
        f'\t\t"name": {json.dumps(name)}\n'
        "\t},\n"
        f'\t"localEndpoints": {endpoints},\n'
        f'\t"serviceProxyHealthy": {"true" if healthy else "false"}\n'
        "}"
    )


def answer_for(listener: dict[str, object]) -> bytes:
    """The whole HTTP answer a `servers` listener gives to any request."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    if listener.get("answer") != "kube-proxy":
        body = "ok"
        status, headers = 200, ["Content-Type: text/plain"]
    else:
        count = int(str(listener.get("endpoints", 0)))
        body = health_body(str(listener["namespace"]), str(listener["name"]), count)
        status = 200 if count > 0 else 503
        headers = ["Content-Type: application/json", "X-Content-Type-Options: nosniff"]
    head = [f"HTTP/1.1 {status} {REASONS[status]}", *headers, "Connection: close"]
    head += [f"Date: {date}", f"Content-Length: {len(body.encode())}"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def servers(listeners: list[dict[str, object]], timeout: float) -> None:
    import selectors
    import threading

    chooser = selectors.DefaultSelector()
    for listener in listeners:
        server = _listening("0.0.0.0", int(str(listener["port"])))
        server.setblocking(False)
        chooser.register(server, selectors.EVENT_READ, listener)
    lock = threading.Lock()

    def handle(conn: socket.socket, peer: tuple[str, int], listener: dict[str, object]) -> None:
        with conn:
            conn.settimeout(timeout)
            try:
                head = _read_head(conn)
            except OSError:
                head = b""
            if not head:
                with lock:
                    _emit(port=listener["port"], peer=f"{peer[0]}:{peer[1]}", request=None)
                return
            line, headers = _parse(head)
            answer = answer_for(listener)
            with contextlib.suppress(OSError):
                conn.sendall(answer)
            with lock:
                _emit(
                    port=listener["port"], peer=f"{peer[0]}:{peer[1]}", request=line,
                    host=headers.get("host"), status=int(answer.split(b" ", 2)[1]),
                )  # fmt: skip

    _emit(ready=True)
    while True:
        for key, _ in chooser.select():
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                conn, peer = ready.accept()
            except BlockingIOError:
                continue
            conn.setblocking(True)
            threading.Thread(target=handle, args=(conn, peer, key.data), daemon=True).start()


def _status_ok(status: int, matcher: list[list[int]]) -> bool:
    return any(low <= status <= high for low, high in matcher)


def _attempt(src: str, check: dict[str, object]) -> dict[str, object]:
    address, port = str(check["address"]), int(str(check["port"]))
    timeout = float(str(check.get("timeout", 2.0)))
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.bind((src, 0))
        conn.connect((address, port))
        sport = conn.getsockname()[1]
        if check["protocol"] != "HTTP":
            return {"ok": True, "sport": sport}
        conn.sendall(
            f"GET {check['path']} HTTP/1.1\r\nHost: {check['host']}\r\n"
            "User-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    except OSError as error:
        return {"ok": False, "error": str(error) or type(error).__name__}
    finally:
        conn.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    matcher = check.get("matcher") or [[200, 399]]
    assert isinstance(matcher, list)
    return {
        "ok": _status_ok(status, matcher), "sport": sport, "status": status,
        "head": head.decode("latin-1"), "body": body.decode("latin-1"),
    }  # fmt: skip


def probe(src: str, checks: list[dict[str, object]]) -> None:
    import threading

    lock = threading.Lock()

    def run(check: dict[str, object]) -> None:
        attempts = [_attempt(src, check) for _ in range(int(str(check.get("count", 1))))]
        with lock:
            _emit(key=check["key"], attempts=attempts)

    threads = [threading.Thread(target=run, args=(check,)) for check in checks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(argv: list[str]) -> None:
    mode, *args = argv
    timeout = 10.0
    if mode == "serve":
        serve(args[0], int(args[1]), timeout)
    elif mode == "proxy":
        proxy(args[0], int(args[1]), json.loads(args[2]), timeout)
    elif mode == "get":
        get(args[0], args[1], int(args[2]), args[3], args[4], timeout)
    elif mode == "servers":
        servers(json.loads(args[0]), 2.0)
    elif mode == "probe":
        probe(args[0], json.loads(args[1]))
    else:
        raise SystemExit(f"http_agent: unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
