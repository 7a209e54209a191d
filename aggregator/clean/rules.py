"""Site rules as data: widget markers, quote-link and chart-image hosts, hidden styles, tracking tables.

No code paths per site live elsewhere: `clean/tree.py` applies whatever the presets here say, and a
source's own `[sources.clean]` rules in feeds.toml are added on top. Every entry cites where it was
seen or which public list it comes from, so a reviewer can check it and an operator can extend it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HostRule:
    """A URL family: `host` itself or any subdomain of it, and a path starting with `path_prefix`."""

    host: str
    path_prefix: str = "/"


@dataclass(frozen=True, slots=True)
class SitePreset:
    """One named set of rules; a source's `clean.preset` picks a combination of these."""

    name: str
    #: CSS selectors: the element and everything in it is removed
    remove: tuple[str, ...] = ()
    #: CSS selectors: the element is replaced by its content (the text stays)
    unwrap: tuple[str, ...] = ()
    #: `<!-- EM_StockImg_Start -->…<!-- EM_StockImg_End -->` ranges are removed
    widget_markers: bool = False
    #: <img> from these hosts are quote pictures (K-line, intraday charts), not article images
    chart_image_hosts: tuple[HostRule, ...] = ()
    #: <a> to these hosts are stock-quote links around company names: unwrapped, text kept
    quote_link_hosts: tuple[HostRule, ...] = ()
    #: <img> from these hosts are analytics beacons
    tracking_image_hosts: tuple[HostRule, ...] = ()
    #: elements hidden by display:none, visibility:hidden, `hidden` or a zero-size overflow box
    remove_hidden: bool = False
    #: images of at most MAX_PIXEL_SIZE_PX in either dimension
    remove_pixels: bool = False
    #: utm_* and TRACKING_PARAMS removed from link and image URLs
    strip_tracking_params: bool = False


# --- eastmoney --------------------------------------------------------------------------------
# Every pattern below is quoted in ../shared/corpus/legacy-posts/README.md ("Markup variants seen").

#: The stock-chart widget markers, also written without spaces, in other case, or with `-`.
#: Seen: `<!-- EM_StockImg_Start -->` (_posts__2022-01-24-NW202201242257831752.md).
WIDGET_MARKER_RE = re.compile(r"^\s*em[\s_-]*stock[\s_-]*img[\s_-]*(start|end)\s*$", re.IGNORECASE)

EASTMONEY = SitePreset(
    name="eastmoney",
    remove=(
        # the chart anchor: <a class="EmImageRemark" data-code="600522|1|1"> around the K-line <img>
        "a.EmImageRemark",
        # the K-line image itself, recognised by its own markings when the host is unknown:
        # alt="K图 600522_0" data-code="K 600522|1|1"
        'img[alt^="K图"]',
        'img[data-code^="K "]',
        # live-quote placeholders after a stock or sector name: <span id="quote_0.002752"></span>,
        # <span id="bkquote_90.BK0493"></span> (filled by script on eastmoney pages; never article text)
        'span[id^="quote_"]',
        'span[id^="bkquote_"]',
    ),
    unwrap=(
        # first mention: <span id="stock_0.002752"><a class="keytip" href="http://quote.eastmoney.com/…">
        'span[id^="stock_"]',
        'span[id^="bk_"]',
        'span[id^="Info."]',
        "a.keytip",
        # data-centre keyword: <a href="http://data.eastmoney.com/notices/" class="infokey">公告</a>
        "a.infokey",
        # repeat mention: <span web="1" href="…" class="em_stock_key_common">新能源</span>
        ".em_stock_key_common",
    ),
    widget_markers=True,
    chart_image_hosts=(
        # K-line pictures: https://webquoteklinepic.eastmoney.com/GetPic.aspx?nid=0.000625&imageType=k&token=…
        HostRule("webquoteklinepic.eastmoney.com"),
        # intraday (分时) pictures of the same widget family: GetPic.aspx?imageType=r
        HostRule("webquotepic.eastmoney.com"),
    ),
    quote_link_hosts=(
        # http://quote.eastmoney.com/unify/r/0.002752, …/unify/r/90.BK0493, …/unify/r/116.00700;
        # a host rule covers its subdomains, so the mobile m.quote.eastmoney.com is included
        HostRule("quote.eastmoney.com"),
        # the mobile quote pages the same widgets link to
        HostRule("wap.eastmoney.com", "/quote/"),
    ),
)

# --- generic ----------------------------------------------------------------------------------

#: An image this small in either dimension is a tracking pixel or a spacer, never content.
#: miniflux's isPixelTracker (internal/reader/sanitizer) requires width and height "1" or "0";
#: we take either dimension ≤ 2 px, as issue 3 asks ("images of 0–2 px").
MAX_PIXEL_SIZE_PX = 2

#: Inline style values that hide an element (CSS 2.1 §9.2.4 display, §11.2 visibility).
HIDDEN_DISPLAY_VALUES = frozenset({"none"})
HIDDEN_VISIBILITY_VALUES = frozenset({"hidden", "collapse"})
#: `overflow:hidden` with one of these sizes is an invisible spacer box
#: (`<p style="display:none;height:1px;overflow:hidden;">`, old_post__2022-01-21-202201212257099936.md).
ZERO_SIZE_VALUES = frozenset({"0", "0px", "1px", "0em", "0rem", "0%", "0pt"})

#: Images served by analytics beacons, grouped by vendor.
#: Sources: miniflux internal/reader/sanitizer blockedResourceURLSubstrings (feedburner, feedsportal,
#: stats.wordpress.com); EasyPrivacy (https://easylist.to/easylist/easyprivacy.txt) for the others.
TRACKING_IMAGE_HOSTS = (
    # Google Analytics / DoubleClick
    HostRule("google-analytics.com"),
    HostRule("stats.g.doubleclick.net"),
    HostRule("ad.doubleclick.net"),
    # FeedBurner's per-item pixel: https://feeds.feedburner.com/~r/<feed>/~4/<id>
    HostRule("feeds.feedburner.com", "/~r/"),
    HostRule("feedsportal.com"),
    # WordPress.com stats
    HostRule("stats.wordpress.com"),
    HostRule("pixel.wp.com"),
    # Baidu Tongji (百度统计) and CNZZ / Umeng (友盟)
    HostRule("hm.baidu.com"),
    HostRule("cnzz.com"),
    HostRule("cnzz.mmstat.com"),
    # Tencent analytics (腾讯分析)
    HostRule("pingjs.qq.com"),
    HostRule("pingtcss.qq.com"),
    # comScore, Quantcast, Yandex Metrica, Facebook pixel, Bing UET
    HostRule("scorecardresearch.com"),
    HostRule("pixel.quantserve.com"),
    HostRule("mc.yandex.ru"),
    HostRule("www.facebook.com", "/tr"),
    HostRule("bat.bing.com"),
)

#: Quote pictures and quote links of other Chinese finance portals, in the same role as eastmoney's.
OTHER_CHART_IMAGE_HOSTS = (
    # Sina Finance K-line and intraday GIFs: http://image.sinajs.cn/newchart/daily/n/sh600000.gif
    HostRule("image.sinajs.cn", "/newchart/"),
)
OTHER_QUOTE_LINK_HOSTS = (
    # Sina Finance quote pages: https://finance.sina.com.cn/realstock/company/sh600000/nc.shtml
    HostRule("finance.sina.com.cn", "/realstock/"),
    # Tonghuashun (同花顺) stock pages: http://stockpage.10jqka.com.cn/600000/
    HostRule("stockpage.10jqka.com.cn"),
    # Xueqiu (雪球) symbol pages: https://xueqiu.com/S/SH600000
    HostRule("xueqiu.com", "/S/"),
    # Tencent quote pages: https://gu.qq.com/sh600000
    HostRule("gu.qq.com"),
)

GENERIC = SitePreset(
    name="generic",
    chart_image_hosts=OTHER_CHART_IMAGE_HOSTS,
    quote_link_hosts=OTHER_QUOTE_LINK_HOSTS,
    tracking_image_hosts=TRACKING_IMAGE_HOSTS,
    remove_hidden=True,
    remove_pixels=True,
    strip_tracking_params=True,
)

#: `clean.preset` in feeds.toml → the presets it combines. "default" is what every source gets
#: unless it opts out; "none" leaves only the sanitizer (allowlist, URL safety, absolute URLs).
PRESETS: dict[str, tuple[SitePreset, ...]] = {
    "default": (GENERIC, EASTMONEY),
    "eastmoney": (EASTMONEY,),
    "generic": (GENERIC,),
    "none": (),
}

# --- tracking query parameters ----------------------------------------------------------------

#: Any parameter starting with one of these is a campaign tag.
#: utm_: https://en.wikipedia.org/wiki/UTM_parameters; mtm_/pk_: Matomo campaign tracking
#: (https://matomo.org/faq/reports/common-campaign-tracking-use-cases-and-examples/); both as in
#: miniflux internal/reader/urlcleaner/urlcleaner.go trackParamsPrefixes.
TRACKING_PARAM_PREFIXES = ("utm_", "mtm_", "pk_")

#: Exact parameter names (compared lower-cased), grouped by vendor like miniflux's trackingParams
#: (internal/reader/urlcleaner/urlcleaner.go), whose sources are: AdGuard TrackParamFilter
#: general_url.txt, Firefox query-stripping records, Neat-URL default-params-by-category.json,
#: Brave query_filter. The Chinese vendors come from Neat-URL and ClearURLs (data.min.json).
#: Never list a parameter that names content (infoCode, id, p, page): identity reads those.
TRACKING_PARAMS_BY_VENDOR: dict[str, frozenset[str]] = {
    "Facebook": frozenset({"fbclid", "fb_action_ids", "fb_action_types", "fb_ref", "fb_source",
                           "fb_comment_id"}),
    "Openstat": frozenset({"_openstat"}),
    "Google Ads": frozenset({"gclid", "dclid", "gbraid", "wbraid", "gclsrc", "srsltid"}),
    "Google Analytics": frozenset({"campaign_id", "campaign_medium", "campaign_name", "campaign_source",
                                   "campaign_term", "campaign_content", "_ga", "_gl"}),
    "Humble Bundle": frozenset({"hmb_campaign", "hmb_medium", "hmb_source"}),
    "itm campaign tags": frozenset({"itm_campaign", "itm_medium", "itm_source"}),
    "Yandex": frozenset({"yclid", "ysclid"}),
    "Twitter": frozenset({"twclid"}),
    "Microsoft Ads": frozenset({"msclkid"}),
    "Mailchimp": frozenset({"mc_cid", "mc_eid", "mc_tc"}),
    "Wicked Reports": frozenset({"wickedid"}),
    "HubSpot": frozenset({"hsa_cam", "_hsenc", "__hssc", "__hstc", "__hsfp", "_hsmi", "hsctatracking"}),
    "Olytics": frozenset({"rb_clickid", "oly_anon_id", "oly_enc_id"}),
    "Vero": frozenset({"vero_id", "vero_conv"}),
    "Marketo": frozenset({"mkt_tok"}),
    "Adobe": frozenset({"sc_cid"}),
    "Beehiiv": frozenset({"_bhlid"}),
    "Branch.io": frozenset({"_branch_match_id", "_branch_referrer"}),
    "Readwise": frozenset({"__readwiselocation"}),
    # Alibaba's Aplus tracker appends spm/scm to links on Taobao, Tmall, Youku and many news portals
    "Alibaba": frozenset({"spm", "scm", "spm_id_from"}),
    # Baidu ad click id
    "Baidu": frozenset({"bd_vid"}),
    # Toutiao share tag
    "ByteDance": frozenset({"tt_from"}),
    # Sina referral tag
    "Sina": frozenset({"sudaref"}),
}

#: Parameters that track only on one site (elsewhere the same name may mean something),
#: like Neat-URL's `param@host` entries.
TRACKING_PARAMS_ON_HOSTS: tuple[tuple[HostRule, frozenset[str]], ...] = (
    # WeChat articles: __biz, mid, idx and sn name the article; these are per reader and per share
    (HostRule("mp.weixin.qq.com"), frozenset({"chksm", "scene", "sessionid", "subscene", "clicktime",
                                              "enterid", "pass_ticket", "ascene", "devicetype",
                                              "version", "nettype", "lang", "exportkey"})),
    # Bilibili share links
    (HostRule("bilibili.com"), frozenset({"share_source", "share_medium", "share_plat", "share_session_id",
                                          "share_tag", "share_from", "vd_source", "unique_k", "from_spmid"})),
)

#: Every vendor's site-independent names in one set, for the hot path.
TRACKING_PARAMS: frozenset[str] = frozenset().union(*TRACKING_PARAMS_BY_VENDOR.values())
