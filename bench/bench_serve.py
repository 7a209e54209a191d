"""Serving throughput: requests/s for /feeds/<category>.atom from `aggregator serve` and from nginx, side by side.

Publishes a ~370 KB category feed (100 items of regional news, bench/corpus.py) with the real
publish code into a temp output_dir, then measures with wrk on loopback, each run bounded by
--seconds: a 200 with `Accept-Encoding: gzip` (served from the precompressed .gz twin) and a
304 (If-None-Match). When nginx is installed, the same files are served by nginx with
`gzip_static on` (the production setup in docs/subscribing.md) and the ratio is printed.
Both servers run one worker process (or --workers N each), so the comparison is like for like.
Usage: python bench/bench_serve.py [--seconds 5] [--connections 32] [--workers 1]
Needs: wrk (apt-get install wrk); optional nginx (apt-get install nginx-light).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config.load import load_config
from aggregator.models import Item, ItemChange
from aggregator.publish.run import publish_categories
from aggregator.storage import open_storage
from bench.corpus import SENTENCES, make_article

CATEGORY = "nantongribao"
FEED_PATH = f"/feeds/{CATEGORY}.atom"
ITEMS = 100
#: characters of article HTML per item, so that 100 items make the ~370 KB feed of issue 5
HTML_CHARS_PER_ITEM = 1050
START_TIMEOUT_SECONDS = 15.0

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp;
  types {{ application/atom+xml atom; text/html html; }}
  charset utf-8;
  charset_types application/atom+xml;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  gzip_static on;
  gzip_vary on;
  server {{
    listen 127.0.0.1:{port};
    location /feeds/ {{ alias {output_dir}/; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FEEDS_TOML = """
[settings]
store = "store.db"
output_dir = "feeds"
base_url = "http://127.0.0.1:{port}/"
max_items_per_feed = {items}

[categories.{category}]
title = "南通日报新闻"
description = "南通日报"

[[sources]]
name = "南通日报"
url = "https://example.org/nt.json"
categories = ["{category}"]
interval = "10m"
"""


def article_html(rng: random.Random, serial: int, base: datetime) -> str:
    """Paragraphs of 2–4 character words cut from the corpus sentences at random: compresses about
    as well as real Chinese news (~3x), where repeating whole sentences would compress ~40x."""
    article = make_article(rng, serial, base)
    corpus = "".join(SENTENCES)
    words: list[str] = []
    while sum(map(len, words)) < HTML_CHARS_PER_ITEM:
        start = rng.randrange(len(corpus) - 4)
        words.append(corpus[start:start + rng.randint(2, 4)])
    text = "".join(words)
    return "".join(f"<p>{text[i:i + 120]}</p>" for i in range(0, len(text), 120)) + article.html[-40:]


def build_site(root: Path, port: int) -> Path:
    """Publish the bench feed with the real code; the feeds.toml that `aggregator serve` reads."""
    config_path = root / "feeds.toml"
    config_path.write_text(FEEDS_TOML.format(port=port, items=ITEMS, category=CATEGORY), encoding="utf-8")
    config = load_config(config_path)
    rng = random.Random(20220124)
    base = datetime(2022, 1, 24, tzinfo=UTC)
    items = []
    for serial in range(ITEMS):
        article = make_article(rng, serial, base)
        items.append(Item(
            article_id=article.info_code, title=article.title, url=f"https://finews.example/a/{article.info_code}.html",
            html=article_html(rng, serial, base), published=article.published, updated=article.published,
            categories=frozenset({CATEGORY}), sources=frozenset({"南通日报"}), content_hash=f"h{serial}",
        ))
    storage = open_storage(config.settings.store)
    try:
        storage.apply_update([ItemChange("insert", i, "南通日报", i.content_hash) for i in items], None)
        publish_categories(storage, config)
    finally:
        storage.close()
    return config_path


def wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT_SECONDS} s")


def probe(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", FEED_PATH, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def run_wrk(port: int, headers: dict[str, str], seconds: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run([*command, f"http://127.0.0.1:{port}{FEED_PATH}"], capture_output=True, text=True,
                          timeout=seconds + 30, check=True)
    if "Non-2xx or 3xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw failures:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{done.stdout}")
    return float(match.group(1))


def measure(port: int, seconds: int, connections: int) -> dict[str, float]:
    gzip_headers = {"Accept-Encoding": "gzip"}
    status, headers = probe(port, gzip_headers)
    if status != 200 or headers.get("content-encoding") != "gzip":
        raise RuntimeError(f"expected a gzip 200, got {status} {headers}")
    conditional = {**gzip_headers, "If-None-Match": headers["etag"]}
    status, _ = probe(port, conditional)
    if status != 304:
        raise RuntimeError(f"expected 304 for If-None-Match, got {status}")
    return {
        "200 gzip": run_wrk(port, gzip_headers, seconds, connections),
        "304 If-None-Match": run_wrk(port, conditional, seconds, connections),
    }


def serve_ours(config_path: Path, port: int, seconds: int, connections: int, workers: int) -> dict[str, float]:
    """`aggregator serve`, the production entry point (uvicorn)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "aggregator", "serve", "--config", str(config_path), "--listen", f"127.0.0.1:{port}",
               "--workers", str(workers)]
    process = subprocess.Popen(command, env=env)
    try:
        wait_until_listening(port, process)
        return measure(port, seconds, connections)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def serve_nginx(nginx: str, output_dir: Path, prefix: Path, seconds: int, connections: int,
                workers: int) -> dict[str, float]:
    port = free_port()
    (prefix / "tmp").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, output_dir=output_dir, workers=workers))
    process = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        wait_until_listening(port, process)
        return measure(port, seconds, connections)
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop of master and worker
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="server processes on each side (serve --workers N)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_serve: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx workers run as an unprivileged user
        port = free_port()
        config_path = build_site(root, port)
        feed = root / "feeds" / f"{CATEGORY}.atom"
        print(f"feed {FEED_PATH}: {feed.stat().st_size / 1000:.0f} KB, gzip twin "
              f"{(root / 'feeds' / f'{CATEGORY}.atom.gz').stat().st_size / 1000:.0f} KB, {ITEMS} items")
        print(f"wrk -t1 -c{args.connections} -d{args.seconds}s on 127.0.0.1, {os.cpu_count()} cores, "
              f"{args.workers} server process(es) each")
        ours = serve_ours(config_path, port, args.seconds, args.connections, args.workers)
        theirs = (serve_nginx(nginx, root / "feeds", root, args.seconds, args.connections, args.workers)
                  if nginx else None)

    print(f"{'':20} {'aggregator':>12} {'nginx':>12} {'ratio':>7}")
    for label, rate in ours.items():
        if theirs is None:
            print(f"{label:20} {rate:12,.0f} {'(absent)':>12}")
        else:
            print(f"{label:20} {rate:12,.0f} {theirs[label]:12,.0f} {rate / theirs[label]:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
