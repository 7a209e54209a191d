"""Generate tests/data/similar/pairs.jsonl, the labelled evaluation set of same-story detection (issue 14).

Run once from the repository root: python scripts/make_similar_pairs.py [--corpus ../shared/corpus/legacy-posts]
The output is committed; regenerate it only when the set itself should change (seeded, so reruns give the
same file). Each line: {"id", "label" (1 same story, 0 different), "kind", "a": {title, html}, "b": {...}}.

Same story (label 1):
- `channel-copy`: the real legacy posts that carry one article id twice (emnews channel and NW per-medium
  copy, `_posts` and `old_post`): eastmoney's own reprints, quote links and spacing differing.
- `reprint-*`: each legacy post with a body against a reprint edit of itself, the edits regional papers
  make: another source line, editor and reporter bylines, a headline tweak, a cut paragraph or sentence,
  an added photo caption, full-width/half-width punctuation, and combinations of these.
- `template-reprint`: one templated market wrap or announcement digest reprinted by another paper.

Different stories (label 0):
- `market-wrap`: daily market wraps ("沪指涨0.52% 成交额…") of different days, one template.
- `announcement`: announcement digests ("XX公司：关于…的公告") of other companies or other subjects,
  including the boilerplate every listed company's notices share.
- `flash-template`: fund-flow, margin and block-trade flashes of different stocks or days.
- `different-post`: two different legacy posts, the closest pairs by shingle overlap first.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.clean import clean_html  # noqa: E402
from aggregator.importers.jekyll_posts import LegacyPost, read_legacy_post  # noqa: E402
from aggregator.similar.signature import shingle_hashes  # noqa: E402
from aggregator.similar.text import story_text  # noqa: E402

SEED = 14
PAPERS = ["南通日报", "泉州晚报", "重庆日报", "扬子晚报", "齐鲁晚报", "新华日报", "浙江日报", "南方日报", "长江日报",
          "大众日报", "湖北日报", "广州日报", "北京青年报", "华西都市报", "钱江晚报"]
NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴婷", "徐明", "孙丽"]
HEADLINE_PREFIXES = ["重磅！", "刚刚，", "最新！", "关注：", "速看！"]
HEADLINE_SUFFIXES = ["", "｜{paper}", " 图", "（附解读）"]
CAPTIONS = [
    "图为{month}月{day}日拍摄的{place}一景。（新华社记者 {name} 摄）",
    "{place}的工作人员在查看设备运行情况。（资料图片）",
    "图为市民在{place}办理业务。{paper}记者 {name} 摄",
]
PLACES = ["南通港", "泉州市区", "重庆江北", "苏州工业园区", "合肥高新区", "青岛港", "成都天府新区"]
SECTORS = ["消费电子", "半导体", "光伏设备", "白酒", "券商", "保险", "房地产开发", "煤炭开采", "汽车整车", "医疗器械",
           "中药", "锂电池", "储能", "军工", "旅游酒店", "航运港口"]
COMPANIES = [("中天科技", "600522"), ("恒瑞医药", "600276"), ("宁德时代", "300750"), ("隆基绿能", "601012"),
             ("海天味业", "603288"), ("三一重工", "600031"), ("格力电器", "000651"), ("比亚迪", "002594"),
             ("万华化学", "600309"), ("紫金矿业", "601899"), ("中信证券", "600030"), ("立讯精密", "002475"),
             ("东方财富", "300059"), ("长江电力", "600900"), ("伊利股份", "600887"), ("牧原股份", "002714")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/legacy-posts"))
    parser.add_argument("--out", type=Path, default=Path("tests/data/similar/pairs.jsonl"))
    args = parser.parse_args()
    rng = random.Random(SEED)
    posts = [p for p in (read_legacy_post(path) for path in sorted(args.corpus.glob("*.md")))
             if isinstance(p, LegacyPost) and p.html.strip() and p.article_id != "2021-12-01-init"]
    pairs: list[dict[str, object]] = []
    pairs += channel_copies(posts)
    pairs += reprints(posts, rng)
    pairs += template_pairs(rng)
    pairs += different_posts(posts, rng)
    for index, pair in enumerate(pairs):
        pair["id"] = f"{index:04d}-{pair['kind']}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps({k: pair[k] for k in ("id", "label", "kind", "a", "b")}, ensure_ascii=False) + "\n")
    same = sum(1 for p in pairs if p["label"] == 1)
    print(f"{args.out}: {len(pairs)} pairs, {same} same story, {len(pairs) - same} different")


def doc(title: str, html: str) -> dict[str, str]:
    return {"title": title, "html": html}


def cleaned(post: LegacyPost) -> dict[str, str]:
    return doc(post.title, clean_html(post.html, post.source_link))


def channel_copies(posts: list[LegacyPost]) -> list[dict[str, object]]:
    by_code: dict[str, list[LegacyPost]] = defaultdict(list)
    for post in posts:
        by_code[post.article_id.removeprefix("NW")].append(post)
    pairs = []
    for group in by_code.values():
        for first, second in zip(group, group[1:]):
            pairs.append({"label": 1, "kind": "channel-copy", "a": cleaned(first), "b": cleaned(second)})
    return pairs


def paragraphs_of(html: str) -> list[str]:
    found = re.findall(r"<p\b[^>]*>.*?</p>", html, re.DOTALL)
    return found or [f"<p>{html}</p>"]


def sentences_of(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[。！？])", paragraph) if s]


def strip_source(html: str) -> str:
    return re.sub(r"（文章来源：[^）]*）", "", html)


def reprint(post: LegacyPost, edit: str, rng: random.Random) -> dict[str, str]:
    """The post as another paper would print it after `edit` (some edits are combinations)."""
    original = cleaned(post)
    title, html = original["title"], original["html"]
    paper, name, other = rng.choice(PAPERS), rng.choice(NAMES), rng.choice(NAMES)
    steps = edit.split("+")
    if "source" in steps:
        html = strip_source(html) + f"<p>（文章来源：{paper}）</p>"
    if "editor" in steps:
        html += f"<p>责任编辑：{name}</p>"
    if "reporter" in steps:
        html = f"<p>本报讯（记者 {name} 通讯员 {other}）</p>" + html
    if "headline" in steps:
        prefix = rng.choice(HEADLINE_PREFIXES)
        suffix = rng.choice(HEADLINE_SUFFIXES).format(paper=paper)
        words = title
        if len(words) > 12 and rng.random() < 0.5:  # a tweak inside the headline: a few characters cut
            cut = rng.randrange(4, len(words) - 4)
            words = words[:cut] + words[cut + 2 :]
        title = prefix + words + suffix
    if "cut" in steps:
        html = cut_some(html, rng)
    if "caption" in steps:
        caption = rng.choice(CAPTIONS).format(month=rng.randint(1, 12), day=rng.randint(1, 28),
                                              place=rng.choice(PLACES), name=name, paper=paper)
        parts = paragraphs_of(html)
        where = rng.randrange(0, len(parts) + 1)
        html = "".join(parts[:where]) + f'<p class="caption">{caption}</p>' + "".join(parts[where:])
    if "width" in steps:
        html = html.translate(str.maketrans("，。：；（）！？", ",.:;()!?")).replace("</p><p>", "</p>\n  <p>")
    return doc(title, html)


def cut_some(html: str, rng: random.Random) -> str:
    """One paragraph cut when there are four or more, else the last sentence of the longest paragraph."""
    parts = paragraphs_of(html)
    if len(parts) >= 4:
        del parts[rng.randrange(1, len(parts))]
        return "".join(parts)
    longest = max(range(len(parts)), key=lambda i: len(parts[i]))
    sentences = sentences_of(re.sub(r"</?p\b[^>]*>", "", parts[longest]))
    if len(sentences) >= 3:
        parts[longest] = "<p>" + "".join(sentences[:-1]) + "</p>"
    return "".join(parts)


#: posts longer than this (HTML characters) are reprinted with the combined edits only
LONG_POST_CHARS = 3000
REPRINT_EDITS = ["source", "editor", "reporter+source", "headline", "cut", "caption", "width",
                 "source+editor+headline", "cut+caption+source", "headline+cut+editor+width"]


def reprints(posts: list[LegacyPost], rng: random.Random) -> list[dict[str, object]]:
    pairs = []
    seen_codes = set()
    for post in posts:
        code = post.article_id.removeprefix("NW")
        if code in seen_codes:
            continue
        seen_codes.add(code)
        # long articles get the combined edits only, which keeps the committed file small
        edits = REPRINT_EDITS if len(post.html) < LONG_POST_CHARS else REPRINT_EDITS[-3:]
        for edit in edits:
            pairs.append({"label": 1, "kind": f"reprint-{edit}", "a": cleaned(post), "b": reprint(post, edit, rng)})
    return pairs


def market_wrap(rng: random.Random, day: int) -> dict[str, str]:
    sh, sz, cy = (rng.uniform(-2.5, 2.5) for _ in range(3))
    up, down = rng.sample(SECTORS, 2), rng.sample(SECTORS, 2)
    turnover = rng.randint(7000, 13000)
    north = rng.uniform(-80, 80)
    verb = lambda x: "涨" if x >= 0 else "跌"  # noqa: E731
    title = f"沪指{verb(sh)}{abs(sh):.2f}% 成交额{turnover}亿元 {up[0]}板块领涨"
    html = (
        f"<p>{day}日，A股三大指数{'集体收涨' if min(sh, sz, cy) > 0 else '涨跌不一'}。截至收盘，沪指{verb(sh)}{abs(sh):.2f}%，"
        f"报{3000 + rng.uniform(0, 700):.2f}点；深证成指{verb(sz)}{abs(sz):.2f}%，报{10000 + rng.uniform(0, 5000):.2f}点；"
        f"创业板指{verb(cy)}{abs(cy):.2f}%，报{2000 + rng.uniform(0, 1500):.2f}点。</p>"
        f"<p>沪深两市成交额{turnover}亿元，较上一交易日{'放量' if rng.random() < 0.5 else '缩量'}{rng.randint(100, 1500)}亿元。"
        f"北向资金全天净{'买入' if north >= 0 else '卖出'}{abs(north):.2f}亿元。</p>"
        f"<p>板块方面，{up[0]}、{up[1]}等板块涨幅居前，{down[0]}、{down[1]}等板块跌幅居前。"
        f"个股方面，两市{rng.randint(1500, 4000)}只个股上涨，{rng.randint(50, 120)}只个股涨停。</p>"
        "<p>机构认为，市场短期仍以结构性行情为主，建议关注业绩确定性较强的板块。</p>"
    )
    return doc(title, html)


ANNOUNCEMENT_SUBJECTS = [
    ("召开{year}年第{n}次临时股东大会的通知", "公司董事会决定于{year}年{m}月{d}日召开{year}年第{n}次临时股东大会，审议关于修订公司章程等议案。"),
    ("控股股东部分股份质押的公告", "公司控股股东将其持有的{shares}万股公司股份办理了质押业务，占其所持股份的{pct}%。"),
    ("{year}年度业绩预告的公告", "经财务部门初步测算，预计{year}年度实现归属于上市公司股东的净利润{low}亿元至{high}亿元，同比增长{pct}%。"),
    ("使用闲置募集资金进行现金管理的进展公告", "公司使用闲置募集资金{shares}万元购买了银行结构性存款，期限{d}天，预期年化收益率{pct}%。"),
    ("董事辞职的公告", "公司董事会于近日收到董事{name}先生的书面辞职报告，{name}先生因个人原因申请辞去公司董事职务。"),
]
BOILERPLATE = "本公司董事会及全体董事保证本公告内容不存在任何虚假记载、误导性陈述或者重大遗漏，并对其内容的真实性、准确性和完整性承担法律责任。"


def announcement(rng: random.Random, company: tuple[str, str], subject: int, year: int) -> dict[str, str]:
    name, code = company
    title_tpl, body_tpl = ANNOUNCEMENT_SUBJECTS[subject]
    values = {"year": year, "n": rng.randint(1, 5), "m": rng.randint(1, 12), "d": rng.randint(1, 28),
              "shares": rng.randint(500, 20000), "pct": rng.randint(5, 95), "low": rng.randint(1, 30),
              "high": rng.randint(31, 60), "name": rng.choice(NAMES)}
    title = f"{name}：关于{title_tpl.format(**values)}"
    html = (f"<p>证券代码：{code} 证券简称：{name} 公告编号：{year}-{rng.randint(1, 120):03d}</p><p>{BOILERPLATE}</p>"
            f"<p>{name}({code})公告，{body_tpl.format(**values)}</p><p>特此公告。{name}董事会</p>")
    return doc(title, html)


def flash(rng: random.Random, company: tuple[str, str], kind: int) -> dict[str, str]:
    name, code = company
    amount = rng.uniform(0.1, 9.9)
    if kind == 0:
        return doc(f"{name}：主力资金净流入{amount:.2f}亿元",
                   f"<p>{name}({code})今日主力资金净流入{amount:.2f}亿元，超大单净流入{amount * 0.6:.2f}亿元，"
                   f"大单净流入{amount * 0.4:.2f}亿元。该股收盘报{rng.uniform(5, 300):.2f}元，涨{rng.uniform(0, 10):.2f}%，"
                   f"换手率{rng.uniform(0.5, 9):.2f}%，成交额{rng.uniform(1, 80):.2f}亿元。</p>")
    if kind == 1:
        return doc(f"{name}融资余额{amount * 10:.2f}亿元，较上一日增加{amount * 1000:.0f}万元",
                   f"<p>{name}({code})最新融资余额为{amount * 10:.2f}亿元，较前一交易日增加{amount * 1000:.0f}万元，"
                   f"融资买入额{amount:.2f}亿元，融资偿还额{amount * 0.8:.2f}亿元；融券余量{rng.randint(1, 90)}万股。</p>")
    return doc(f"{name}今日发生{rng.randint(1, 6)}笔大宗交易 成交{amount:.2f}亿元",
               f"<p>{name}({code})今日发生大宗交易，成交价{rng.uniform(5, 300):.2f}元，相对收盘价折价"
               f"{rng.uniform(0, 12):.2f}%，成交量{rng.randint(10, 900)}万股，成交额{amount:.2f}亿元。"
               f"买方营业部为机构专用，卖方营业部为中信证券上海分公司。</p>")


def template_pairs(rng: random.Random) -> list[dict[str, object]]:
    pairs: list[dict[str, object]] = []
    for _ in range(70):
        day_a, day_b = rng.sample(range(1, 29), 2)
        pairs.append({"label": 0, "kind": "market-wrap",
                      "a": market_wrap(random.Random(day_a * 7919), day_a),
                      "b": market_wrap(random.Random(day_b * 7919), day_b)})
    for _ in range(70):
        first, second = rng.sample(COMPANIES, 2)
        subject = rng.randrange(len(ANNOUNCEMENT_SUBJECTS))
        other_subject = subject if rng.random() < 0.7 else rng.randrange(len(ANNOUNCEMENT_SUBJECTS))
        year = rng.choice([2021, 2022])
        pairs.append({"label": 0, "kind": "announcement",
                      "a": announcement(random.Random(rng.random()), first, subject, year),
                      "b": announcement(random.Random(rng.random()), second, other_subject, year)})
    for _ in range(20):  # one company, two different notices of the same kind
        company = rng.choice(COMPANIES)
        subject = rng.randrange(len(ANNOUNCEMENT_SUBJECTS))
        pairs.append({"label": 0, "kind": "announcement",
                      "a": announcement(random.Random(rng.random()), company, subject, 2021),
                      "b": announcement(random.Random(rng.random()), company, subject, 2022)})
    for _ in range(50):
        first, second = rng.sample(COMPANIES, 2)
        kind = rng.randrange(3)
        pairs.append({"label": 0, "kind": "flash-template",
                      "a": flash(random.Random(rng.random()), first, kind),
                      "b": flash(random.Random(rng.random()), second, kind)})
    for _ in range(30):  # the same templated story reprinted: a different source line and editor
        if rng.random() < 0.5:
            day = rng.randint(1, 28)
            story = market_wrap(random.Random(day * 7919), day)
        else:
            story = announcement(random.Random(rng.random()), rng.choice(COMPANIES),
                                 rng.randrange(len(ANNOUNCEMENT_SUBJECTS)), 2022)
        copy = doc(story["title"], story["html"] + f"<p>（文章来源：{rng.choice(PAPERS)}）</p>"
                   f"<p>责任编辑：{rng.choice(NAMES)}</p>")
        pairs.append({"label": 1, "kind": "template-reprint", "a": story, "b": copy})
    return pairs


def different_posts(posts: list[LegacyPost], rng: random.Random) -> list[dict[str, object]]:
    """The 60 closest pairs of different legacy articles by shingle overlap, then 40 random ones."""
    unique = {post.article_id.removeprefix("NW"): post for post in posts}
    items = list(unique.values())
    shingles = [set(shingle_hashes(story_text(p.title, clean_html(p.html, p.source_link)))) for p in items]
    scored = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            union = shingles[i] | shingles[j]
            scored.append((len(shingles[i] & shingles[j]) / len(union) if union else 0.0, i, j))
    scored.sort(reverse=True)
    chosen = [(i, j) for _, i, j in scored[:60]]
    rest = [(i, j) for _, i, j in scored[60:]]
    chosen += rng.sample(rest, 40)
    return [{"label": 0, "kind": "different-post", "a": cleaned(items[i]), "b": cleaned(items[j])}
            for i, j in chosen]


if __name__ == "__main__":
    main()
