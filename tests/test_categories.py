"""categories.py: medium names → pinyin slugs, collisions kept apart, legacy slugs and links redirected."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.categories import (
    LEGACY_SLUG_MAP,
    category_for_medium,
    category_title,
    media_by_slug,
    medium_from_tag,
    medium_slug,
    redirect_for_legacy_category,
    slug_for_legacy,
)

URL_SAFE_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# Media seen in ../shared/corpus/legacy-posts (tags) and on the legacy site's category pages.
REAL_MEDIA = [
    ("南通日报", "nantongribao"),
    ("泉州晚报", "quanzhouwanbao"),
    ("每日经济新闻", "meirijingjixinwen"),
    ("财联社", "cailianshe"),
    ("券商中国", "quanshangzhongguo"),
    ("证券时报", "zhengquanshibao"),
    ("上海证券报", "shanghaizhengquanbao"),
    ("东方财富研究中心", "dongfangcaifuyanjiuzhongxin"),
    ("央视新闻客户端", "yangshixinwenkehuduan"),
    ("21世纪经济报道", "21shijijingjibaodao"),
    ("IT之家", "itzhijia"),
    ("ＩＴ之家", "itzhijia"),
    ("36氪", "36ke"),
    ("TechWeb", "techweb"),
    ("重庆晨报", "chongqingchenbao"),
    ("厦门日报", "xiamenribao"),
    ("招商银行", "zhaoshangyinhang"),
    ("安信国际证券(香港)", "anxinguojizhengquan-xianggang"),
    ("21世纪经济报道 21财经APP", "21shijijingjibaodao-21caijingapp"),
    ("证券时报·e公司", "zhengquanshibao-egongsi"),
]


@pytest.mark.parametrize(("medium", "slug"), REAL_MEDIA, ids=[m for m, _ in REAL_MEDIA])
def test_real_medium_names_give_their_pinyin_slug(medium: str, slug: str) -> None:
    assert medium_slug(medium) == slug
    assert category_for_medium(medium) == slug


@given(st.text(max_size=30))
def test_every_slug_is_lowercase_ascii_and_url_safe(medium: str) -> None:
    assert URL_SAFE_SLUG.match(medium_slug(medium))


def test_name_without_letters_digits_or_han_gets_a_hashed_slug() -> None:
    assert re.fullmatch(r"medium-[0-9a-f]{4}", medium_slug("🙂"))
    assert medium_slug("🙂") != medium_slug("🙃")


@pytest.mark.parametrize(
    ("first", "second"),
    [("金融界", "金融街"), ("TechWeb", "Techweb"), ("证券时报", "證券時報")],
    ids=["homophones", "letter-case", "traditional-characters"],
)
def test_media_with_the_same_slug_stay_distinct(first: str, second: str) -> None:
    base = medium_slug(first)
    assert medium_slug(second) == base
    taken = {base: first}
    second_slug = category_for_medium(second, taken)
    assert second_slug != base and re.fullmatch(re.escape(base) + r"-[0-9a-f]{4}", second_slug)
    assert category_for_medium(first, taken) == base
    # deterministic: the suffix depends on the name only, asked twice or in another store
    assert category_for_medium(second, {base: "某个别的媒体"}) == second_slug


def test_slug_already_owned_by_the_medium_is_kept_even_if_pinyin_would_change() -> None:
    assert category_for_medium("重庆晨报", {"zhongqingchenbao": "重庆晨报"}) == "zhongqingchenbao"


def test_suffix_grows_when_the_short_suffix_is_taken_too() -> None:
    short = category_for_medium("金融街", {"jinrongjie": "金融界"})
    longer = category_for_medium("金融街", {"jinrongjie": "金融界", short: "另一家"})
    assert longer.startswith(short) and len(longer) == len(short) + 1


def test_title_and_tag_are_the_medium_with_news() -> None:
    assert category_title("南通日报") == "南通日报新闻"
    assert medium_from_tag("每日经济新闻新闻") == "每日经济新闻"
    assert medium_from_tag("站长消息") is None
    assert medium_from_tag("新闻") is None


def test_configured_categories_titled_medium_news_are_taken_by_that_medium() -> None:
    titles = {"nantongribao": "南通日报新闻", "jiangsu": "江苏", "jinrongjie": "金融界新闻"}
    taken = media_by_slug(titles)
    assert taken == {"nantongribao": "南通日报", "jinrongjie": "金融界"}
    assert category_for_medium("南通日报", taken) == "nantongribao"
    assert category_for_medium("金融街", taken).startswith("jinrongjie-")


# The legacy site's slugs (zning1994/finews category/<slug>.html) and the media they came from.
LEGACY = [
    ("nantongribao", "南通日报"),
    ("ITzhijia", "IT之家"),
    ("21shijijingjibaodao 21caijingAPP", "21世纪经济报道 21财经APP"),
    ("21shijijingjibaodao%2021caijingAPP", "21世纪经济报道 21财经APP"),
    ("21shijijingjibaodao  nancailicaitong", "21世纪经济报道  南财理财通"),
    ("anxinguojizhengquan(xianggang)", "安信国际证券(香港)"),
    ("zhongqingchenbao", "重庆晨报"),
    ("shamenribao", "厦门日报"),
    ("zhaoshangyinxing", "招商银行"),
    ("xingyeyinxing", "兴业银行"),
    ("zhongguoyinxingbaoxianbao", "中国银行保险报"),
]


@pytest.mark.parametrize(("legacy", "medium"), LEGACY, ids=[slug for slug, _ in LEGACY])
def test_legacy_slug_maps_to_the_new_slug_of_its_medium(legacy: str, medium: str) -> None:
    assert slug_for_legacy(legacy) == medium_slug(medium)


def test_every_legacy_map_entry_is_covered_by_a_real_medium() -> None:
    assert set(LEGACY_SLUG_MAP) <= {legacy for legacy, _ in LEGACY}


def test_legacy_channel_slug_is_kept() -> None:
    assert slug_for_legacy("emnews") == "emnews"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/category/nantongribao.html", "/nantongribao.atom"),
        ("/category/21shijijingjibaodao%2021caijingAPP.html", "/21shijijingjibaodao-21caijingapp.atom"),
        ("/category/zhongqingchenbao.html?from=home#top", "/chongqingchenbao.atom"),
        ("/category/Techweb/", "/techweb.atom"),
        ("/emnews/", "/emnews.atom"),
        ("/nantongribao/", "/nantongribao.atom"),
        ("/index.html", None),
        ("/", None),
        ("/2022/01/24/NW202201242257831752.html", None),
    ],
)
def test_legacy_category_links_redirect_to_the_category_feed(path: str, target: str | None) -> None:
    assert redirect_for_legacy_category(path) == target


def test_redirect_target_is_a_template() -> None:
    assert redirect_for_legacy_category("/category/cailianshe.html", "/feeds/{slug}/") == "/feeds/cailianshe/"
