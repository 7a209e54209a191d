"""Cleaning throughput on one core: items/s of clean_html over the legacy corpus and a generated 3 KB set.

Target (issue 3): ≥ 2,000 items/s of 3 KB articles. Usage:
    python bench/bench_clean.py [--items 2000] [--size-bytes 3000] [--repeat 5]
The generated articles carry every eastmoney variant of ../shared/corpus/legacy-posts/README.md
(widget with hidden spacer, stock/sector/infokey links, quote placeholders, content images, source line).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from aggregator.clean import clean_html

LEGACY_DIR = REPO_ROOT.parent / "shared" / "corpus" / "legacy-posts"
ITEM_URL = "http://finance.eastmoney.com/news/1354,202201212257099936.html"

WIDGET = ('<p style="display:none;height:1px;overflow:hidden;"><br /></p><!-- EM_StockImg_Start -->'
          '<p style="text-align:center;"><a href="http://quote.eastmoney.com/unify/r/1.{code}" '
          'data-code="{code}|1|1" data-code2="{code}|1|2|" class="EmImageRemark" target="_blank"><img '
          'src="https://webquoteklinepic.eastmoney.com/GetPic.aspx?nid=1.{code}&imageType=k&token='
          '28dfeb41d35cc81d84b4664d7c23c49f&at=1" border="0" alt="K图 {code}_0" data-code="K {code}|1|1" '
          'style="border:#d1d1d1 1px solid;" width="578" height="276" /></a></p><!-- EM_StockImg_End -->')
STOCK = ('<span id="stock_1.{code}"><a href="http://quote.eastmoney.com/unify/r/1.{code}" class="keytip" '
         'data-code="1,{code}">{name}</a></span><span id="quote_1.{code}"></span>')
REPEAT = ('<span web="1" href="http://quote.eastmoney.com/unify/r/1.{code}" class="em_stock_key_common" '
          'data-code="1,{code}">{name}</span>')
INFOKEY = '<span id="Info.3332"><a href="http://data.eastmoney.com/notices/" class="infokey">公告</a></span>'
IMAGE = ('<center><img src="https://dfscdn.dfcfw.com/download/D{serial}_w800h555.jpg" width="552" '
         'orginial_src="https://dfscdn.dfcfw.com/download/D{serial}_w800h555_o.jpg" '
         'style="border:#d1d1d1 1px solid;padding:3px;margin:5px 0;" /></center>')
WORDS = ("绿色低碳制造行动方案明确了实施路径，公司将牢固树立发展理念，通过能源替代、原料替代、节能减排等手段，"
         "实施绿色设计、绿色采购、绿色生产等措施，致力产品与服务全生命周期绿色低碳。")
NAMES = ("中天科技", "巨化股份", "联创股份", "国新文化", "长安汽车", "昇兴股份")


def generate_articles(count: int, size_bytes: int, seed: int = 20220124) -> list[str]:
    """`count` article bodies of about `size_bytes` UTF-8 bytes each, in eastmoney markup."""
    rng = random.Random(seed)
    articles = []
    for serial in range(count):
        code = f"{rng.randrange(600000, 604000)}"
        name = rng.choice(NAMES)
        parts = [WIDGET.format(code=code)] if rng.random() < 0.6 else []
        while sum(len(part.encode()) for part in parts) < size_bytes - 200:
            start = rng.randrange(len(WORDS) // 2)
            sentence = WORDS[start:start + rng.randrange(30, len(WORDS) - start)]
            if rng.random() < 0.4:
                sentence = STOCK.format(code=code, name=name) + sentence + REPEAT.format(code=code, name=name)
            if rng.random() < 0.2:
                sentence += INFOKEY
            parts.append(f"<p>{sentence}<br /></p>")
            if rng.random() < 0.1:
                parts.append(IMAGE.format(serial=serial))
        parts.append('<p class="em_media">（文章来源：南通日报）</p>')
        articles.append("".join(parts))
    return articles


def read_legacy_bodies() -> list[str]:
    bodies = []
    for path in sorted(LEGACY_DIR.glob("*.md")):
        if path.name != "README.md":
            bodies.append(path.read_text(encoding="utf-8").lstrip("\n").split("---", 2)[2])
    return bodies


def measure(label: str, bodies: list[str], repeat: int) -> None:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for body in bodies:
            clean_html(body, ITEM_URL)
        rates.append(len(bodies) / (time.perf_counter() - start))
    mean_bytes = statistics.mean(len(body.encode()) for body in bodies)
    print(f"{label}: {len(bodies)} items, mean {mean_bytes:,.0f} bytes: "
          f"{statistics.median(rates):,.0f} items/s (median of {repeat}, best {max(rates):,.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--size-bytes", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    clean_html("<p>warm-up</p>", ITEM_URL)  # compiles the default rules once, outside the timing
    if LEGACY_DIR.exists():
        measure("legacy corpus", read_legacy_bodies(), args.repeat)
    else:
        print(f"legacy corpus: {LEGACY_DIR} is absent, skipped")
    measure(f"generated {args.size_bytes} B articles", generate_articles(args.items, args.size_bytes), args.repeat)


if __name__ == "__main__":
    main()
