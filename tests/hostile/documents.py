"""Hostile documents and server behaviours, one function each; no business logic.

Each is what a broken or malicious server can send at an ordinary feed URL. The cases in
test_inputs.py pair them with the outcome the fault-isolation contract allows.
"""

from __future__ import annotations

import json
import time
import zlib
from http.server import BaseHTTPRequestHandler

#: how long a dripping or endless server keeps going before it gives up by itself
SERVER_GIVE_UP_SECONDS = 20.0


def rss(items: str, *, title: str = "hostile", declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (f'{declaration}<rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://hostile.example/</link><description>d</description>{items}</channel></rss>")


def item(article_id: str, title: str, body: str = "<p>body</p>") -> str:
    url = f"http://hostile.example/a/{article_id}.html"
    return (f"<item><title>{title}</title><link>{url}</link><guid>{url}</guid>"
            f"<description><![CDATA[{body}]]></description></item>")


def billion_laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">' for n in range(1, 10))
    return rss(item("NW202201010000000001", "laughs &lol9;"),
               declaration=f'<?xml version="1.0"?><!DOCTYPE rss [{entities}]>').encode()


def quadratic_blowup() -> bytes:
    big = "A" * 100_000
    return rss(item("NW202201010000000002", "blowup " + "&a;" * 20_000),
               declaration=f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{big}">]>').encode()


def xxe(system_id: str, article_id: str) -> bytes:
    return rss(item(article_id, "xxe &xxe;"),
               declaration=f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{system_id}">]>').encode()


def external_dtd(dtd_url: str) -> bytes:
    return rss(item("NW202201010000000005", "dtd &ext;"),
               declaration=f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{dtd_url}">').encode()


def gzip_bomb(decompressed_mib: int = 1024) -> bytes:
    """gzip members of 16 MiB of zeros, concatenated (RFC 1952 §2.2 allows it): ~16 KiB each."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    member = compressor.compress(b"\0" * (16 << 20)) + compressor.flush()
    return member * (decompressed_mib // 16)


def many_items(count: int) -> bytes:
    return rss("".join(
        f"<item><title>t{n}</title><guid>http://hostile.example/a/NW2022{n:012d}.html</guid></item>"
        for n in range(count))).encode()


def huge_item(size_bytes: int) -> bytes:
    paragraph = "<p>" + "南通日报区域经济观察。" * 30 + "</p>"
    body = paragraph * (size_bytes // len(paragraph.encode()))
    return rss(item("NW202201010000000010", "huge", body) + item("NW202201010000000011", "small")).encode()


def nul_bytes() -> bytes:
    return rss(item("NW202201010000000020", "clean one") + item("NW202201010000000021", "nul\0in title")
               + "<item><title>nul id</title><guid>http://hostile.example/a/NW20220101000000\x0022.html</guid></item>"
               ).encode()


def invalid_utf8() -> bytes:
    good = item("NW202201010000000030", "南通港集装箱吞吐量创新高") + item("NW202201010000000031", "泉州晚报港口观察")
    return rss(good + item("NW202201010000000032", "坏\udcff字"), title="南通日报新闻").encode("utf-8", "surrogateescape")


def gbk_labelled_utf8() -> bytes:
    return rss(item("NW202201010000000040", "南通日报新闻，区域经济观察"),
               declaration='<?xml version="1.0" encoding="utf-8"?>').encode("gbk")


def eastmoney_list(records: object) -> bytes:
    return json.dumps({"rc": 1, "records": records}, ensure_ascii=False).encode()


def record(info_code: str, title: str, **extra: object) -> dict[str, object]:
    return {"infoCode": info_code, "title": title, "datetime": "2022-01-24 00:48:09", "medianame": "南通日报", **extra}


def detail(text: str) -> bytes:
    return json.dumps({"rc": 1, "text": text}, ensure_ascii=False).encode()


def endless(handler: BaseHTTPRequestHandler) -> None:
    """An RSS prologue, then items forever (until the client hangs up or SERVER_GIVE_UP_SECONDS)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.end_headers()
    chunk = "".join(item(f"NW2022{n:012d}", "endless") for n in range(200)).encode()
    deadline = time.monotonic() + SERVER_GIVE_UP_SECONDS
    try:
        handler.wfile.write(rss("").split("</channel>")[0].encode())
        while time.monotonic() < deadline:
            handler.wfile.write(chunk)
    except OSError:
        return
    finally:
        handler.close_connection = True


def slow_drip(handler: BaseHTTPRequestHandler) -> None:
    """A valid feed, one byte every 50 ms: each read succeeds, the whole never arrives in time."""
    body = rss(item("NW202201010000000050", "drip")).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    deadline = time.monotonic() + SERVER_GIVE_UP_SECONDS
    try:
        for byte in body:
            if time.monotonic() > deadline:
                break
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        return
    finally:
        handler.close_connection = True
