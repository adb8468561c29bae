#!/usr/bin/env python3
"""TCP ingest benchmark for `stormwatch serve` (a benchmark, not a test).

Starts the release binary on loopback, then:
  1. throughput: N senders (default 8) push pre-built per-second aggregated telemetry as fast as TCP takes it;
     the rate is lines counted by the service (/metrics) over wall time until every line is counted;
  2. latency: the same senders paced to a total of --paced-rate lines/s (default 1,000,000) for --paced-seconds;
     then reads the service's own ingest-to-window latency quantiles from /metrics.

With --ack each throughput sender opens with `ACK ON bench-<n>` (docs/telemetry.md) and the clock stops once
every sender has heard its last `ACK <n>`: the lines are applied and the journal synced.

With --tls the port speaks TLS (a throwaway CA and server certificate made with `openssl`; the senders verify
the server and present a client certificate, so ingest_tls_client_ca is set too) and the same figures are taken
over TLS.

Usage: benches/tcp_ingest.py [--binary target/release/stormwatch] [--senders 8] [--lines-per-sender 500000] [--tls]
"""
import argparse
import json
import multiprocessing
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

USERS = [f"90-B3-D5-1F-30-01-{i >> 8:02X}-{i & 0xFF:02X}" for i in range(100)]
T0 = 1_773_133_200_000


def build_lines(count, sender):
    """Per-second aggregated lines in event-time order, like an exporter writes them."""
    out, n, second = [], 0, 0
    while n < count:
        ts = T0 + second * 1000
        for index, user in enumerate(USERS):
            rate = 5 + index
            out.append(f'{{"ts":{ts + sender},"user":"{user}","event":"request","count":{rate}}}\n')
            out.append(f'{{"ts":{ts + 200},"user":"{user}","event":"queued","count":{rate}}}\n')
            out.append(f'{{"ts":{ts + 400},"user":"{user}","event":"delivered","count":{rate}}}\n')
            n += 3
            if n >= count:
                break
        second += 1
    return "".join(out).encode()


def connect(address, tls_dir):
    sock = socket.create_connection(address)
    if not tls_dir:
        return sock
    context = ssl.create_default_context(cafile=f"{tls_dir}/ca.pem")
    context.load_cert_chain(f"{tls_dir}/client.pem", f"{tls_dir}/client.key")
    return context.wrap_socket(sock, server_hostname="localhost")


def make_pki(directory):
    """A CA, a server certificate for localhost and a client certificate, both signed by the CA."""
    def run(*command):
        subprocess.run(command, cwd=directory, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    for name, subject in (("server", "localhost"), ("client", "bench exporter")):
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={subject}")
        with open(f"{directory}/{name}.ext", "w") as ext:
            ext.write(f"subjectAltName=DNS:{subject.replace(' ', '-')}\n")
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")


def finish(sock, tls_dir):
    """Ends a TLS session with close_notify and waits for the server to close, so no unread session ticket turns
    the close into a reset that loses lines still in the server's socket buffer."""
    if tls_dir:
        try:
            sock.unwrap()
        except (OSError, ssl.SSLError):
            pass


def send(address, data, paced_rate, lines, tls_dir):
    with connect(address, tls_dir) as sock:
        if not paced_rate:
            sock.sendall(data)
            finish(sock, tls_dir)
            return
        # Paced: slices every 10 ms.
        per_slice = max(1, int(len(data) * paced_rate / lines / 100))
        start, offset = time.perf_counter(), 0
        while offset < len(data):
            end = data.find(b"\n", min(offset + per_slice, len(data) - 1)) + 1 or len(data)
            sock.sendall(data[offset:end])
            offset = end
            due = start + (offset / len(data)) * (lines / paced_rate)
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        finish(sock, tls_dir)


def flat_out(address, lines, sender, tls_dir, ready, cpu, ack=False):
    """One sender of the throughput run: builds and connects, waits for the others, then sends as fast as TCP
    takes it; reports the CPU seconds it spent sending. With `ack`, it speaks the acknowledged protocol and
    returns once the service acknowledges its last line."""
    data = build_lines(lines, sender)
    with connect(address, tls_dir) as sock:
        replies = None
        if ack:
            sock.sendall(f"ACK ON bench-{sender}\n".encode())
            replies = sock.makefile("rb")
            first = replies.readline()
            if first != b"ACK 0\n":
                raise SystemExit(f"the service answered {first!r} to ACK ON")
        ready.wait()
        before = time.process_time()
        sock.sendall(data)
        if ack:
            sock.shutdown(socket.SHUT_WR)
            last = b""
            for line in replies:
                last = line
            # build_lines rounds up to whole seconds of three lines each: the count sent, not the one asked for.
            sent = data.count(b"\n")
            if last != f"ACK {sent}\n".encode():
                raise SystemExit(f"the last acknowledgement was {last!r}, not ACK {sent}")
        else:
            finish(sock, tls_dir)
        cpu.put(time.process_time() - before)


def counted(http):
    text = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode()
    match = re.search(r'^stormwatch_ingest_lines_total\{source="tcp"\} (\S+)$', text, re.M)
    return int(float(match.group(1))) if match else 0, text


def wait_counted(http, target, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        n, text = counted(http)
        if n >= target:
            return text
        time.sleep(0.05)
    raise SystemExit(f"only {counted(http)[0]} of {target} lines counted")


def thread_cpu(pid):
    """CPU seconds of the service by thread name (engine, tokio-rt-worker, ...), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/stormwatch")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--lines-per-sender", type=int, default=500_000)
    parser.add_argument("--paced-rate", type=int, default=1_000_000)
    parser.add_argument("--paced-seconds", type=int, default=5)
    parser.add_argument("--tls", action="store_true", help="TLS with client certificates on the telemetry port")
    parser.add_argument("--throughput-only", action="store_true", help="skip the paced latency run")
    parser.add_argument("--ack", action="store_true", help="throughput senders use the acknowledged protocol")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="stormwatch-bench-")
    http, ingest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    tls_dir = data_dir if args.tls else None
    command = [args.binary, "serve", "--data-dir", data_dir, "--http", http, "--ingest", ingest]
    if args.tls:
        make_pki(data_dir)
        with open(f"{data_dir}/bench.toml", "w") as config:
            config.write(f'ingest_tls_cert = "{data_dir}/server.pem"\ningest_tls_key = "{data_dir}/server.key"\n'
                         f'ingest_tls_client_ca = "{data_dir}/ca.pem"\n')
        command += ["--config", f"{data_dir}/bench.toml"]
    service = subprocess.Popen(command, stderr=None if os.environ.get("BENCH_LOG") else subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{http}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        host, port = ingest.split(":")
        address = (host, int(port))

        total = args.lines_per_sender * args.senders
        size = sum(len(build_lines(args.lines_per_sender, s)) for s in range(args.senders))
        # Each sender builds its lines (and connects) before the clock starts, so that the time measured is
        # sending and ingesting, not forking and pickling 300 MB of payload through pipes.
        ready, sent_cpu = multiprocessing.Barrier(args.senders + 1), multiprocessing.Queue()
        senders = [multiprocessing.Process(target=flat_out,
                                           args=(address, args.lines_per_sender, s, tls_dir, ready, sent_cpu, args.ack))
                   for s in range(args.senders)]
        for sender in senders:
            sender.start()
        cpu_before = thread_cpu(service.pid)
        ready.wait()
        start = time.perf_counter()
        senders_cpu = sum(sent_cpu.get(timeout=600) for _ in senders)
        for sender in senders:
            sender.join()
        if any(sender.exitcode for sender in senders):
            raise SystemExit("a sender failed")
        wait_counted(http, total)
        elapsed = time.perf_counter() - start
        cpu = thread_cpu(service.pid)
        cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu.items()}
        print(f"throughput{' (TLS)' if args.tls else ''}{' (ACK)' if args.ack else ''}: {total:,} lines ({size / 1e6:.0f} MB) from {args.senders} senders in {elapsed:.2f} s "
              f"= {total / elapsed / 1e6:.2f} M lines/s, {size / elapsed / 1e6:.0f} MB/s")
        # Where the CPU went (on a machine with few cores the sum, not one thread, can be the bound).
        busy = sorted(((s, n) for n, s in cpu.items() if s >= 0.01), reverse=True)
        print(f"  cpu: {elapsed * os.cpu_count():.2f} core-s in that time; senders {senders_cpu:.2f} s; service "
              f"{sum(cpu.values()):.2f} s (" + ", ".join(f"{n} {s:.2f}" for s, n in busy) + ")")

        if args.throughput_only:
            return
        time.sleep(121)  # let the burst age out of the latency windows
        paced_lines = args.paced_rate * args.paced_seconds // args.senders
        payloads = [build_lines(paced_lines, s) for s in range(args.senders)]
        before = counted(http)[0]
        with multiprocessing.Pool(args.senders) as pool:
            pool.starmap(send, [(address, p, args.paced_rate / args.senders, paced_lines, tls_dir) for p in payloads])
        text = wait_counted(http, before + paced_lines * args.senders)
        time.sleep(1.5)  # one more tick publishes the quantiles
        text = counted(http)[1]
        quantiles = dict(re.findall(r'^stormwatch_ingest_latency_seconds\{quantile="([^"]+)"\} (\S+)$', text, re.M))
        print(f"latency at {args.paced_rate:,} lines/s (service quantiles over the last 1-2 min): "
              + ", ".join(f"p{float(q) * 100:g} {float(v) * 1000:.2f} ms" for q, v in sorted(quantiles.items())))
    finally:
        service.terminate()
        service.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
