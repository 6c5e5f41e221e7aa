#!/usr/bin/env python3
"""Hostile clients for tools/bench/badday.sh.

  badday_clients.py slowloris HOST:PORT --connections 1000 --byte_interval 1 --limit 60
      Opens the connections, then sends an HTTP request head one byte per --byte_interval
      seconds on each (spread over the interval) until the server closes it or --limit passes.
      Prints one JSON line: how many were closed by the server, how many got a 408, how long
      they lived.

  badday_clients.py flood HOST:PORT --attempts 1000 --hold 10
      Starts --attempts non-blocking connects as fast as it can, holds every socket for
      --hold seconds (reading nothing), then closes them all. Prints one JSON line with how many
      connects completed, failed or were still pending.

  badday_clients.py probe HOST:PORT
      One echo round trip on a new connection; prints its JSON result (ok, microseconds).
"""

import argparse
import json
import resource
import selectors
import socket
import sys
import time

REQUEST_HEAD = b"GET /plaintext HTTP/1.1\r\nHost: slow\r\nX-Trickle: " + b"a" * 4000 + b"\r\n\r\n"


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def slowloris(args):
    raise_fd_limit(args.connections + 64)
    start = time.monotonic()
    conns = []
    for i in range(args.connections):
        s = socket.create_connection(address(args.server), timeout=10)
        s.setblocking(False)
        # Each connection sends its byte at its own offset within the interval.
        conns.append({"sock": s, "sent": 0, "next": start + args.byte_interval * i / args.connections,
                      "reply": b"", "opened": time.monotonic(), "closed": None})
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c["sock"], selectors.EVENT_READ, c)
    open_count = len(conns)
    deadline = start + args.limit
    while open_count and time.monotonic() < deadline:
        now = time.monotonic()
        for c in conns:
            if c["closed"] is None and now >= c["next"] and c["sent"] < len(REQUEST_HEAD):
                try:
                    c["sock"].send(REQUEST_HEAD[c["sent"]:c["sent"] + 1])
                    c["sent"] += 1
                except OSError:
                    pass  # the read side reports the close
                c["next"] += args.byte_interval
        for key, _ in sel.select(timeout=0.05):
            c = key.data
            try:
                data = c["sock"].recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                c["reply"] += data
                continue
            c["closed"] = time.monotonic()
            sel.unregister(c["sock"])
            c["sock"].close()
            open_count -= 1
    lifetimes = sorted(c["closed"] - c["opened"] for c in conns if c["closed"] is not None)
    result = {
        "connections": len(conns),
        "closed_by_server": len(lifetimes),
        "still_open": open_count,
        "got_408": sum(1 for c in conns if c["reply"].startswith(b"HTTP/1.1 408")),
        "bytes_sent_max": max(c["sent"] for c in conns),
        "lifetime_s_min": round(lifetimes[0], 2) if lifetimes else None,
        "lifetime_s_max": round(lifetimes[-1], 2) if lifetimes else None,
    }
    for c in conns:
        if c["closed"] is None:
            c["sock"].close()
    print(json.dumps(result))
    return 0 if open_count == 0 else 1


def flood(args):
    raise_fd_limit(args.attempts + 64)
    sel = selectors.DefaultSelector()
    socks, failed = [], 0
    for _ in range(args.attempts):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(address(args.server))
        if err not in (0, 115):  # 115: EINPROGRESS
            failed += 1
            s.close()
            continue
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    connected = set()
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.add(s)
            else:
                failed += 1
    pending = len(socks) - len(connected) - failed
    for s in socks:
        s.close()
    print(json.dumps({"attempts": args.attempts, "connected": len(connected), "failed": failed,
                      "pending": max(pending, 0)}))
    return 0


def probe(args):
    start = time.monotonic()
    try:
        with socket.create_connection(address(args.server), timeout=5) as s:
            s.sendall(b"probe\n")
            got = b""
            while len(got) < 6:
                chunk = s.recv(64)
                if not chunk:
                    break
                got += chunk
        ok = got == b"probe\n"
    except OSError as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 1
    print(json.dumps({"ok": ok, "us": round((time.monotonic() - start) * 1e6)}))
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("slowloris")
    p.add_argument("server")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--byte_interval", type=float, default=1.0)
    p.add_argument("--limit", type=float, default=60.0)
    p = sub.add_parser("flood")
    p.add_argument("server")
    p.add_argument("--attempts", type=int, default=1000)
    p.add_argument("--hold", type=float, default=10.0)
    p = sub.add_parser("probe")
    p.add_argument("server")
    args = parser.parse_args()
    return {"slowloris": slowloris, "flood": flood, "probe": probe}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
