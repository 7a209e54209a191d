"""Generate a synthetic regional-news corpus of RSS documents for benchmarks; no business logic.

Bodies look like the legacy mirror's (../shared/corpus/legacy-posts): eastmoney stock widgets, hidden
spacer paragraphs, quote links, a source line, ~3 KB of text. About `duplicate_share` of the items
reuse an article of another source under a different URL shape, as eastmoney's channels do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

WIDGET = (
    '<p style="display:none;height:1px;overflow:hidden;"><br /></p><!-- EM_StockImg_Start -->'
    '<p style="text-align:center;"><a href="http://quote.eastmoney.com/unify/r/1.{code}" data-code="{code}|1|1" '
    'class="EmImageRemark" target="_blank"><img src="https://webquoteklinepic.eastmoney.com/GetPic.aspx?'
    'nid=1.{code}&amp;imageType=k&amp;token=28dfeb41d35cc81d84b4664d7c23c49f&amp;at=1" border="0" '
    'alt="K图 {code}_0" style="border:#d1d1d1 1px solid;" width="578" height="276" /></a></p>'
    "<!-- EM_StockImg_End -->"
)
QUOTE = (
    '<span id="stock_1.{code}"><a href="http://quote.eastmoney.com/unify/r/1.{code}" class="keytip" '
    'data-code="1,{code}">{name}</a></span><span id="quote_1.{code}"></span>'
)
SENTENCES = [
    "聚焦可持续发展，以积极投身新能源为主体的新型电力系统建设，大力建设绿色低碳制造体系。",
    "按照行动方案，企业将牢固树立绿色低碳发展理念，通过能源替代、原料替代、节能减排等手段推进转型。",
    "目标到2030年，同比2020年基线数据，万元产值综合能耗降低40%左右，二氧化碳排放降低50%左右。",
    "行动方案制定了利用新技术、对标新设备、优化新工艺、深挖损耗点、精控排放量的总体技术路线。",
    "同时强化文化保障，积极参加全国节能宣传周、全国低碳日等主题活动，营造绿色低碳氛围。",
    "市场人士认为，区域经济稳中向好，地方财政收入保持增长，重点项目建设有序推进。",
]
MEDIA = ["南通日报", "泉州晚报", "上海证券报", "中国证券报", "证券时报", "每日经济新闻", "财联社", "中国基金报"]


@dataclass(frozen=True)
class Article:
    info_code: str
    title: str
    html: str
    published: datetime
    medium: str


def make_article(rng: random.Random, serial: int, base: datetime) -> Article:
    code = f"{rng.randrange(600000, 604000):06d}"
    paragraphs = []
    while sum(len(p) for p in paragraphs) < 2600:
        text = "".join(rng.choice(SENTENCES) for _ in range(3))
        if rng.random() < 0.3:
            text = text.replace("企业", QUOTE.format(code=code, name="中天科技"), 1)
        paragraphs.append(f"<p>{text}</p>")
    medium = rng.choice(MEDIA)
    html = (WIDGET.format(code=code) if rng.random() < 0.5 else "") + "".join(paragraphs)
    html += f'<p class="em_media">（文章来源：{medium}）</p>'
    digits = f"{base:%Y%m%d}{2257000000 + serial:010d}"
    return Article(f"NW{digits}", f"{medium}：第{serial}号新闻 区域经济观察", html,
                   base - timedelta(minutes=serial), medium)


def render_rss(title: str, articles: list[Article], *, emnews_urls: set[str]) -> str:
    """RSS 2.0 text; articles whose code is in `emnews_urls` use the rolling-news URL shape."""
    items = []
    for article in articles:
        digits = article.info_code[2:]
        if article.info_code in emnews_urls:
            link = f"http://finance.eastmoney.com/news/1344,{digits}.html"
        else:
            link = f"http://finews.zning.xyz/html_News/NewsShare.html?infoCode={article.info_code}"
        items.append(
            f"<item><title>{escape(article.title)}</title><link>{escape(link)}</link>"
            f"<guid isPermaLink=\"false\">{escape(link)}</guid>"
            f"<pubDate>{format_datetime(article.published)}</pubDate>"
            f"<description>{escape(article.html)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link><description>bench</description>"
        + "".join(items)
        + "</channel></rss>"
    )


def generate(sources: int, items_per_source: int, duplicate_share: float, seed: int = 20220124,
             first_serial: int = 0, prefix: str = "source") -> dict[str, list[Article]]:
    """source name → its articles; about `duplicate_share` of items are another source's article.

    Articles are numbered from `first_serial` + 1, so corpora with disjoint serials share no article.
    """
    rng = random.Random(seed)
    base = datetime(2022, 1, 24, 8, 0, tzinfo=UTC)
    serial = first_serial
    corpus: dict[str, list[Article]] = {}
    pool: list[Article] = []
    for index in range(sources):
        articles = []
        for _ in range(items_per_source):
            if pool and rng.random() < duplicate_share:
                articles.append(rng.choice(pool))
            else:
                serial += 1
                article = make_article(rng, serial, base)
                articles.append(article)
                pool.append(article)
        corpus[f"{prefix}-{index:03d}"] = articles
    return corpus
