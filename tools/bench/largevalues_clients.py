#!/usr/bin/env python3
"""Clients for tools/bench/largevalues.sh: large values and multi-key replies.

Every mode speaks memcache (`--protocol memcache`, the default) or RESP (`--protocol resp`) and
prints one JSON line. Modes that watch the daemon's memory take its --pid and sample VmRSS from
/proc/PID/status every 100 ms.

  largevalues_clients.py keys --shards 2 --per_shard 2 [--prefix k]
      Prints comma-separated keys, --per_shard of them on each of --shards shards, as the
      daemon routes them (memcache: FNV-1a-64 mod shards; RESP: libstdc++ std::hash mod shards).

  largevalues_clients.py store HOST:PORT --keys a,b --size 1048576
      Stores a value of --size bytes under each key (checks STORED / +OK).

  largevalues_clients.py amplify HOST:PORT --pid PID --keys k --connections 4 --names 3000
      Each connection sends one multi-key read (`get` / `MGET`) naming the keys --names times in
      all (cycling), then reads --chunk bytes every --interval seconds for --duration seconds,
      then resets (SO_LINGER 0). Meanwhile a new connection asks `version` / `PING` every
      --probe_every seconds. Reports the daemon's peak RSS growth over its RSS before, the reply
      size, what was read, the probes' answer times, and whether the daemon still answers after.

  largevalues_clients.py stall HOST:PORT --keys big0,big1 --size N --gets 10
      One reader process per key sends --gets pipelined reads of it and reads the replies as
      fast as it can (checks the byte count and the end); meanwhile a third connection sends
      `version` / `PING` in a loop and times each round trip. Reports the round trips (p50,
      p99, max) and the readers' times.

  largevalues_clients.py burst HOST:PORT --pid PID --keys_prefix v --count 50 --connections 100
      --bursts times: --connections connections each pipeline --pipeline reads naming all
      --count keys, read a (seeded) random part of the reply, up to --read_max bytes, and
      reset. Then RSS is sampled --after seconds after the last reset. Reports RSS before, the
      peak, and after.
"""

import argparse
import json
import multiprocessing
import random
import selectors
import socket
import struct
import sys
import threading
import time

MASK64 = (1 << 64) - 1


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


# --- Key routing, as the daemon does it ---------------------------------------------------------

def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h ^= b
        h = (h * 1099511628211) & MASK64
    return h


def std_hash(data):
    """libstdc++'s std::hash<std::string_view> on 64-bit: _Hash_bytes(data, len, 0xc70f6907)."""
    mul = (0xc6a4a793 << 32) + 0x5bd1e995

    def shift_mix(v):
        return v ^ (v >> 47)

    n = len(data)
    h = (0xc70f6907 ^ ((n * mul) & MASK64)) & MASK64
    aligned = n & ~7
    for i in range(0, aligned, 8):
        word = struct.unpack_from("<Q", data, i)[0]
        d = (shift_mix((word * mul) & MASK64) * mul) & MASK64
        h ^= d
        h = (h * mul) & MASK64
    if n & 7:
        tail = 0
        for b in reversed(data[aligned:]):
            tail = ((tail << 8) + b) & MASK64
        h ^= tail
        h = (h * mul) & MASK64
    h = (shift_mix(h) * mul) & MASK64
    return shift_mix(h)


def shard_of(protocol, key, shards):
    data = key.encode()
    return (fnv1a64(data) if protocol == "memcache" else std_hash(data)) % shards


def spread_keys(protocol, shards, per_shard, prefix):
    found = {s: [] for s in range(shards)}
    i = 0
    while any(len(v) < per_shard for v in found.values()):
        key = "%s%d" % (prefix, i)
        s = shard_of(protocol, key, shards)
        if len(found[s]) < per_shard:
            found[s].append(key)
        i += 1
    # Interleaved, so that cycling over them alternates shards.
    return [found[s][j] for j in range(per_shard) for s in range(shards)]


# --- Protocol pieces ----------------------------------------------------------------------------

def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def store_request(protocol, key, value):
    if protocol == "memcache":
        return b"set %s 0 0 %d\r\n" % (key.encode(), len(value)) + value + b"\r\n"
    return resp_command("SET", key, value)


def multiget_request(protocol, names):
    if protocol == "memcache":
        return b"get " + " ".join(names).encode() + b"\r\n"
    return resp_command("MGET", *names)


def single_get_request(protocol, key):
    if protocol == "memcache":
        return b"get %s\r\n" % key.encode()
    return resp_command("GET", key)


def value_reply_size(protocol, key, size):
    """Bytes of one value in a get reply (without memcache's END)."""
    if protocol == "memcache":
        return len(b"VALUE %s 0 %d\r\n" % (key.encode(), size)) + size + 2
    return len(b"$%d\r\n" % size) + size + 2


def reply_end(protocol):
    return b"END\r\n" if protocol == "memcache" else b""


def probe_request(protocol):
    return b"version\r\n" if protocol == "memcache" else b"PING\r\n"


def probe_reply_done(protocol, got):
    return got.endswith(b"\r\n") and (got.startswith(b"VERSION ") if protocol == "memcache" else got == b"+PONG\r\n")


def make_value(size, seed=0):
    block = bytes((i * 31 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def recv_until(sock, done, limit=1 << 16):
    got = b""
    while not done(got):
        chunk = sock.recv(limit)
        if not chunk:
            raise ConnectionError("closed after %r" % got[:80])
        got += chunk
    return got


def probe_once(server, protocol, timeout=10.0):
    """A new connection, one version/PING; seconds to the answer (connect included), or None."""
    start = time.monotonic()
    try:
        with socket.create_connection(server, timeout=timeout) as s:
            s.sendall(probe_request(protocol))
            recv_until(s, lambda g: probe_reply_done(protocol, g))
    except OSError:
        return None
    return time.monotonic() - start


# --- RSS sampling -------------------------------------------------------------------------------

def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    def __init__(self, pid, period=0.1):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak = rss_kib(pid) or 0
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            r = rss_kib(self.pid)
            if r is not None:
                self.peak = max(self.peak, r)
                self.samples += 1
            self.stop_event.wait(self.period)

    def stop(self):
        self.stop_event.set()
        self.join()
        r = rss_kib(self.pid)
        if r is not None:
            self.peak = max(self.peak, r)


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def ms(v):
    return None if v is None else round(v * 1e3, 2)


# --- Modes --------------------------------------------------------------------------------------

def cmd_keys(args):
    print(",".join(spread_keys(args.protocol, args.shards, args.per_shard, args.prefix)))
    return 0


def cmd_store(args):
    server = address(args.server)
    keys = args.keys.split(",")
    start = time.monotonic()
    with socket.create_connection(server, timeout=120) as s:
        for i, key in enumerate(keys):
            s.sendall(store_request(args.protocol, key, make_value(args.size, i)))
            got = recv_until(s, lambda g: g.endswith(b"\r\n"))
            if got not in (b"STORED\r\n", b"+OK\r\n"):
                print(json.dumps({"ok": False, "key": key, "reply": got[:200].decode(errors="replace")}))
                return 1
    print(json.dumps({"ok": True, "keys": len(keys), "size": args.size, "s": round(time.monotonic() - start, 2)}))
    return 0


def cmd_amplify(args):
    server = address(args.server)
    keys = args.keys.split(",")
    names = [keys[i % len(keys)] for i in range(args.names)]
    request = multiget_request(args.protocol, names)
    reply_bytes = sum(value_reply_size(args.protocol, k, args.size) for k in names) + len(reply_end(args.protocol))
    if args.protocol == "resp":
        reply_bytes += len(b"*%d\r\n" % len(names))
    before = rss_kib(args.pid)
    sampler = RssSampler(args.pid)
    sampler.start()
    conns = []
    for _ in range(args.connections):
        s = socket.create_connection(server, timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # slow readers: small windows
        s.sendall(request)
        conns.append({"sock": s, "read": 0})
    probes = []
    stop_probes = threading.Event()

    def prober():
        while not stop_probes.is_set():
            probes.append(probe_once(server, args.protocol))
            stop_probes.wait(args.probe_every)

    probe_thread = threading.Thread(target=prober, daemon=True)
    probe_thread.start()
    closed_early = 0
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        for c in conns:
            if c["sock"] is None:
                continue
            c["sock"].settimeout(args.interval)
            try:
                chunk = c["sock"].recv(args.chunk)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                closed_early += 1
                c["sock"].close()
                c["sock"] = None
                continue
            c["read"] += len(chunk)
        time.sleep(args.interval)
    during_peak = max(sampler.peak, rss_kib(args.pid) or 0)
    stop_probes.set()
    probe_thread.join()
    for c in conns:
        if c["sock"] is not None:
            reset(c["sock"])
    time.sleep(1.0)
    sampler.stop()
    after_probe = probe_once(server, args.protocol)
    ok_probes = [p for p in probes if p is not None]
    result = {
        "rss_before_kib": before,
        "rss_peak_kib": during_peak,
        "growth_kib": during_peak - before,
        "rss_1s_after_reset_kib": rss_kib(args.pid),
        "reply_bytes_per_connection": reply_bytes,
        "read_bytes_per_connection": [c["read"] for c in conns],
        "closed_by_server": closed_early,
        "probes": len(probes),
        "probes_failed": len(probes) - len(ok_probes),
        "probe_ms_p50": ms(percentile(ok_probes, 50)),
        "probe_ms_max": ms(max(ok_probes) if ok_probes else None),
        "answers_after": after_probe is not None,
        "after_ms": ms(after_probe),
    }
    print(json.dumps(result))
    return 0 if after_probe is not None and closed_early == 0 and len(ok_probes) == len(probes) else 1


def stall_reader(server, protocol, key, size, gets, out):
    start = time.monotonic()
    expected = gets * (value_reply_size(protocol, key, size) + len(reply_end(protocol)))
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    got = 0
    tail = b""
    try:
        with socket.create_connection(server, timeout=60) as s:
            s.sendall(single_get_request(protocol, key) * gets)
            while got < expected:
                n = s.recv_into(view, min(len(buf), expected - got))
                if n == 0:
                    break
                got += n
                tail = (tail + bytes(view[max(0, n - 16):n]))[-16:]
    except OSError as e:
        out.put({"key": key, "ok": False, "error": str(e), "bytes": got})
        return
    end = reply_end(protocol) or b"\r\n"
    out.put({"key": key, "ok": got == expected and tail.endswith(end), "bytes": got,
             "s": round(time.monotonic() - start, 3)})


def cmd_stall(args):
    server = address(args.server)
    keys = args.keys.split(",")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    rtts = []
    with socket.create_connection(server, timeout=30) as p:
        p.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = probe_request(args.protocol)

        def round_trip():
            t = time.monotonic()
            p.sendall(request)
            recv_until(p, lambda g: probe_reply_done(args.protocol, g), 256)
            return time.monotonic() - t

        for _ in range(50):  # warm-up: the quiet round trip
            round_trip()
        quiet = [round_trip() for _ in range(200)]
        readers = [ctx.Process(target=stall_reader, args=(server, args.protocol, k, args.size, args.gets, results))
                   for k in keys]
        start = time.monotonic()
        for r in readers:
            r.start()
        while any(r.is_alive() for r in readers):
            rtts.append(round_trip())
            if args.probe_pause:
                time.sleep(args.probe_pause)
        elapsed = time.monotonic() - start
        for r in readers:
            r.join()
    got = [results.get() for _ in readers]
    total = sum(g["bytes"] for g in got)
    print(json.dumps({
        "readers": got,
        "all_ok": all(g["ok"] for g in got),
        "bytes": total,
        "s": round(elapsed, 2),
        "MB_per_s": round(total / elapsed / 1e6, 1),
        "quiet_rtt_ms_p50": ms(percentile(quiet, 50)),
        "quiet_rtt_ms_max": ms(max(quiet)),
        "round_trips": len(rtts),
        "rtt_ms_p50": ms(percentile(rtts, 50)),
        "rtt_ms_p99": ms(percentile(rtts, 99)),
        "rtt_ms_max": ms(max(rtts) if rtts else None),
    }))
    return 0 if all(g["ok"] for g in got) else 1


def cmd_burst(args):
    server = address(args.server)
    keys = ["%s%d" % (args.keys_prefix, i) for i in range(args.count)]
    request = multiget_request(args.protocol, keys) * args.pipeline
    rng = random.Random(args.seed)
    before = rss_kib(args.pid)
    sampler = RssSampler(args.pid)
    sampler.start()
    connected = 0
    start = time.monotonic()
    for _ in range(args.bursts):
        sel = selectors.DefaultSelector()
        socks = []
        pending = 0
        for _ in range(args.connections):
            s = socket.create_connection(server, timeout=10)
            s.sendall(request)
            s.setblocking(False)
            socks.append(s)
            connected += 1
            want = rng.randint(0, args.read_max)
            if want:  # one that wants nothing is reset without reading
                sel.register(s, selectors.EVENT_READ, [want, 0])
                pending += 1
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.1):
                state = key.data
                try:
                    chunk = key.fileobj.recv(min(1 << 20, state[0] - state[1]))
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                state[1] += len(chunk)
                if not chunk or state[1] >= state[0]:
                    sel.unregister(key.fileobj)
                    pending -= 1
        for s in socks:
            reset(s)
        sel.close()
    burst_s = time.monotonic() - start
    marks = [float(x) for x in args.after.split(",")]
    ended = time.monotonic()
    after = {}
    for m in marks:
        delay = ended + m - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        after["%gs" % m] = rss_kib(args.pid)
    sampler.stop()
    alive = probe_once(server, args.protocol) is not None
    print(json.dumps({
        "rss_before_kib": before,
        "rss_peak_kib": sampler.peak,
        "rss_after_kib": after,
        "connections": connected,
        "reply_bytes_per_connection": args.pipeline * (sum(value_reply_size(args.protocol, k, args.size) for k in keys)
                                                       + len(reply_end(args.protocol))),
        "burst_s": round(burst_s, 2),
        "answers_after": alive,
    }))
    return 0 if alive else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)

    def common(p, server=True):
        if server:
            p.add_argument("server")
        p.add_argument("--protocol", choices=["memcache", "resp"], default="memcache")

    p = sub.add_parser("keys")
    common(p, server=False)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--per_shard", type=int, default=1)
    p.add_argument("--prefix", default="k")
    p = sub.add_parser("store")
    common(p)
    p.add_argument("--keys", required=True)
    p.add_argument("--size", type=int, required=True)
    p = sub.add_parser("amplify")
    common(p)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--size", type=int, required=True, help="the stored values' size")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--names", type=int, default=3000)
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--probe_every", type=float, default=0.2)
    p = sub.add_parser("stall")
    common(p)
    p.add_argument("--keys", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--gets", type=int, default=10)
    p.add_argument("--probe_pause", type=float, default=0.0)
    p = sub.add_parser("burst")
    common(p)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--keys_prefix", default="v")
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--size", type=int, required=True, help="the stored values' size")
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--pipeline", type=int, default=10)
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--read_max", type=int, default=4 << 20)
    p.add_argument("--after", default="1,3,10")
    p.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return {"keys": cmd_keys, "store": cmd_store, "amplify": cmd_amplify, "stall": cmd_stall,
            "burst": cmd_burst}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
