#!/usr/bin/env python3
"""Connection churn for tools/bench/soak.sh.

Opens new connections at a fixed rate to percored's echo, http, memcache and resp endpoints and
ends each one a different way, so that every close path of the server runs over and over:

  request_fin   1-3 requests, every reply read and checked, then close (FIN)
  request_rst   the same, then close with SO_LINGER 0 (RST)
  partial_fin   the first part of a request, then FIN; the server must close its side too
  partial_rst   the first part of a request, then RST
  bare_fin      connect, close at once
  bare_rst      connect, RST at once
  garbage       bytes the protocol rejects; some answer or a close must come back
  unread        many pipelined requests, then RST without reading a byte of the replies
  big           one large echo message (16-256 KiB) or /metrics, read back whole
  idle          one request, then silence until the server closes (--idle_timeout)
  slow_header   HTTP headers that never finish; the server must answer 408 and close

Replies are checked byte for byte where the value is known (memcache and resp values are
derived from their key, so a get returns that value or a miss). Anything else — a wrong reply,
no reply within --timeout, a connection the server should have closed but did not — is a
failure; a sample of them is printed. The run ends with one JSON object on stdout; exit status
1 if anything failed.
"""

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time

KINDS = [  # (kind, weight)
    ("request_fin", 35), ("request_rst", 15), ("partial_fin", 10), ("partial_rst", 10),
    ("bare_fin", 4), ("bare_rst", 4), ("garbage", 6), ("unread", 5), ("big", 5),
    ("idle", 3), ("slow_header", 3),
]
CHURN_KEYS = 1000


class Failure(Exception):
    pass


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def churn_key(i):
    return b"churn:%04d" % i


def churn_value(i):
    # Deterministic per key, so a get is checked whatever set ran last; 1..4000 bytes.
    n = (i * 37) % 4000 + 1
    return (b"%04d-" % i * (n // 5 + 1))[:n]


# --- requests and reply readers, per protocol ----------------------------------------------

async def read_http(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    body = await reader.readexactly(length)
    return status, body, close


def http_request(rng):
    path, status, body = rng.choice([
        (b"/plaintext", 200, b"Hello, World!"), (b"/plaintext", 200, b"Hello, World!"),
        (b"/json", 200, b'{"message":"Hello, World!"}'), (b"/", 200, None), (b"/nope", 404, None),
    ])
    return b"GET " + path + b" HTTP/1.1\r\nHost: soak\r\nUser-Agent: soak-churn\r\n\r\n", status, body


async def http_exchange(reader, writer, rng):
    request, want_status, want_body = http_request(rng)
    writer.write(request)
    status, body, _ = await read_http(reader)
    if status != want_status or (want_body is not None and body != want_body):
        raise Failure("http: got %d %r for %r" % (status, body[:60], request.split(b"\r\n")[0]))


def memcache_request(rng):
    i = rng.randrange(CHURN_KEYS)
    if rng.random() < 0.3:
        v = churn_value(i)
        return b"set %s 0 0 %d\r\n%s\r\n" % (churn_key(i), len(v), v), ("set", i)
    return b"get %s\r\n" % churn_key(i), ("get", i)


async def memcache_reply(reader, what):
    op, i = what
    line = await reader.readline()
    if op == "set":
        if line != b"STORED\r\n":
            raise Failure("memcache set: %r" % line[:80])
        return
    if line == b"END\r\n":
        return  # a miss (evicted or not set yet)
    parts = line.split()
    if len(parts) != 4 or parts[0] != b"VALUE" or parts[1] != churn_key(i):
        raise Failure("memcache get: %r" % line[:80])
    data = await reader.readexactly(int(parts[3]) + 2)
    end = await reader.readline()
    if data[:-2] != churn_value(i) or end != b"END\r\n":
        raise Failure("memcache get %s: wrong value or terminator %r" % (churn_key(i), end[:40]))


def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp_request(rng):
    i = rng.randrange(CHURN_KEYS)
    r = rng.random()
    if r < 0.1:
        return resp_command(b"PING"), ("ping", i)
    if r < 0.4:
        return resp_command(b"SET", churn_key(i), churn_value(i)), ("set", i)
    return resp_command(b"GET", churn_key(i)), ("get", i)


async def resp_reply(reader, what):
    op, i = what
    line = await reader.readline()
    if op == "ping":
        if line != b"+PONG\r\n":
            raise Failure("resp ping: %r" % line[:80])
    elif op == "set":
        if line != b"+OK\r\n":
            raise Failure("resp set: %r" % line[:80])
    else:
        if line == b"$-1\r\n":
            return
        if not line.startswith(b"$"):
            raise Failure("resp get: %r" % line[:80])
        data = await reader.readexactly(int(line[1:]) + 2)
        if data[:-2] != churn_value(i):
            raise Failure("resp get %s: wrong value" % churn_key(i).decode())


async def exchange(service, reader, writer, rng):
    """One request and its checked reply."""
    if service == "echo":
        msg = rng.randbytes(rng.randrange(1, 8192))
        writer.write(msg)
        got = await reader.readexactly(len(msg))
        if got != msg:
            raise Failure("echo: %d bytes came back different" % len(msg))
    elif service == "http":
        await http_exchange(reader, writer, rng)
    elif service == "memcache":
        request, what = memcache_request(rng)
        writer.write(request)
        await memcache_reply(reader, what)
    else:
        request, what = resp_request(rng)
        writer.write(request)
        await resp_reply(reader, what)


def a_request(service, rng):
    if service == "echo":
        return rng.randbytes(rng.randrange(2, 2048))
    if service == "http":
        return http_request(rng)[0]
    if service == "memcache":
        return memcache_request(rng)[0]
    return resp_request(rng)[0]


GARBAGE = {
    "http": [b"BLAH\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
             b"\x00\x01\x02\xff\r\n\r\n"],
    "memcache": [b"bogus command\r\n", b"set k 0 0 notanumber\r\n", b"set k 0 0 3\r\ntoolong\r\n",
                 b"\xff\xfe\r\n"],
    "resp": [b"*x\r\n", b"*1\r\n$-5\r\n", b"*2\r\n$3\r\nGET\r\n:12\r\n", b"$3\r\nabc\r\n"],
}


def rst(writer):
    sock = writer.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def wait_eof(reader, within):
    """Reads (and drops) until the server closes. Raises Failure if it has not within `within`."""
    deadline = time.monotonic() + within
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("server did not close within %.0f s (got %r)" % (within, got[:60]))
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except ConnectionResetError:
            return got
        except asyncio.TimeoutError:
            continue
        if not chunk:
            return got
        got += chunk


# --- one connection --------------------------------------------------------------------------

async def one_connection(kind, service, address, rng, args):
    reader, writer = await asyncio.open_connection(*address)
    try:
        if kind in ("request_fin", "request_rst"):
            for _ in range(rng.randrange(1, 4)):
                await exchange(service, reader, writer, rng)
            if kind == "request_rst":
                rst(writer)
                return
        elif kind in ("partial_fin", "partial_rst"):
            request = a_request(service, rng)
            writer.write(request[: rng.randrange(1, len(request))])
            await writer.drain()
            if kind == "partial_rst":
                rst(writer)
                return
            writer.write_eof()
            got = await wait_eof(reader, args.timeout)
            if service == "echo" and not got:
                raise Failure("echo: partial message not echoed before the close")
        elif kind == "bare_rst":
            rst(writer)
            return
        elif kind == "garbage":
            writer.write(rng.choice(GARBAGE[service]))
            await writer.drain()
            got = await asyncio.wait_for(reader.read(4096), args.timeout)
            if service == "http" and not (got.startswith(b"HTTP/1.1 4") or got.startswith(b"HTTP/1.1 5")):
                raise Failure("http garbage: %r" % got[:60])
        elif kind == "unread":
            writer.write(a_request(service, rng) * rng.randrange(50, 400))
            await writer.drain()
            await asyncio.sleep(rng.random() * 0.05)
            rst(writer)
            return
        elif kind == "big":
            if service == "http":
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n")
                status, body, _ = await read_http(reader)
                if status != 200 or b"percore_" not in body:
                    raise Failure("http /metrics: %d, %d bytes" % (status, len(body)))
            else:
                msg = rng.randbytes(rng.randrange(16 << 10, 256 << 10))
                writer.write(msg)
                got = await reader.readexactly(len(msg))
                if got != msg:
                    raise Failure("echo: %d-byte message came back different" % len(msg))
        elif kind == "idle":
            await exchange(service, reader, writer, rng)
            await wait_eof(reader, args.idle_timeout + args.timeout)
        elif kind == "slow_header":
            writer.write(b"GET /plaintext HTTP/1.1\r\nHost: soak\r\nX-Slow: ")
            await writer.drain()
            got = await wait_eof(reader, args.header_timeout + args.timeout)
            if not got.startswith(b"HTTP/1.1 408"):
                raise Failure("slow header: %r instead of 408" % got[:60])
        writer.close()
        await writer.wait_closed()
    except BaseException:
        writer.transport.abort()
        raise


async def run(args):
    rng = random.Random(args.seed)
    services = {name: parse_address(addr) for name, addr in
                (("echo", args.echo), ("http", args.http), ("memcache", args.memcache), ("resp", args.resp)) if addr}
    chosen = [(k, w) for k, w in KINDS if not args.kinds or k in args.kinds.split(",")]
    if not chosen:
        raise SystemExit("soak_churn: --kinds names none of " + ", ".join(k for k, _ in KINDS))
    kinds, weights = zip(*chosen)
    counts = {}
    failures = {"count": 0, "samples": []}
    open_now = {"n": 0, "max": 0}

    def fail(what):
        failures["count"] += 1
        if len(failures["samples"]) < 20:
            failures["samples"].append(what)

    async def guarded(kind, service):
        key = "%s/%s" % (service, kind)
        open_now["n"] += 1
        open_now["max"] = max(open_now["max"], open_now["n"])
        try:
            limit = args.timeout * 3 + args.idle_timeout + args.header_timeout
            await asyncio.wait_for(one_connection(kind, service, services[service], random.Random(rng.random()), args),
                                   limit)
            counts[key] = counts.get(key, 0) + 1
        except Failure as e:
            fail("%s: %s" % (key, e))
        except asyncio.TimeoutError:
            fail("%s: no progress within the time limit" % key)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as e:
            fail("%s: %s: %s" % (key, type(e).__name__, e))
        finally:
            open_now["n"] -= 1

    tasks = set()
    start = time.monotonic()
    interval = 1.0 / args.rate
    n = 0
    while True:
        due = start + n * interval
        now = time.monotonic()
        if due - start >= args.duration:
            break
        if due > now:
            await asyncio.sleep(due - now)
        kind = rng.choices(kinds, weights)[0]
        candidates = [s for s in services if not (kind == "slow_header" and s != "http") and
                      not (kind == "garbage" and s == "echo") and not (kind == "big" and s not in ("echo", "http"))]
        if not candidates:
            n += 1
            continue
        service = rng.choice(candidates)
        task = asyncio.create_task(guarded(kind, service))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    issuing = time.monotonic() - start
    if tasks:
        await asyncio.wait(tasks)
    elapsed = time.monotonic() - start
    connections = sum(counts.values()) + failures["count"]
    return {
        "elapsed_s": round(elapsed, 3),
        "connections": connections,
        "connections_per_s": round(n / issuing, 1) if issuing > 0 else 0,
        "max_open": open_now["max"],
        "failures": failures["count"],
        "by_kind": dict(sorted(counts.items())),
        "failure_samples": failures["samples"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--echo", help="HOST:PORT of the echo service")
    p.add_argument("--http", help="HOST:PORT of the http service")
    p.add_argument("--memcache", help="HOST:PORT of the memcache service")
    p.add_argument("--resp", help="HOST:PORT of the resp service")
    p.add_argument("--rate", type=float, default=100, help="new connections per second (default 100)")
    p.add_argument("--duration", type=float, default=10, help="seconds to open connections for (default 10)")
    p.add_argument("--timeout", type=float, default=10, help="seconds to wait for any one reply (default 10)")
    p.add_argument("--idle_timeout", type=float, default=5,
                   help="the server's --idle_timeout in seconds: 'idle' connections wait for it (default 5)")
    p.add_argument("--header_timeout", type=float, default=3,
                   help="the server's --http_header_timeout in seconds (default 3)")
    p.add_argument("--kinds", default="", help="comma-separated kinds to use (default: all, weighted as listed above)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if not any((args.echo, args.http, args.memcache, args.resp)):
        p.error("give at least one of --echo, --http, --memcache, --resp")
    if args.rate <= 0:
        p.error("--rate must be positive")
    result = asyncio.run(run(args))
    print(json.dumps(result))
    for s in result["failure_samples"]:
        print("soak_churn: failure: " + s, file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
