"""Where a 超大附件's download page keeps the file: a pure reading of the page's HTML.

QQ Mail and Tencent Exmail pages (…/cgi-bin/ftnExs_download, wx.mail.qq.com/ftn/download)
point at the file on a `*.ftn.qq.com/ftn_handler/…` address; NetEase 163/126 pages
(…/large-attachment-download/…) at a download address with the file's key; Aliyun mail and
DingTalk pages keep a signed object-storage address (`*.aliyuncs.com`), often inside a JSON
state object with escaped slashes. The page is followed to the file by `mailbot.largefiles`.
"""

from __future__ import annotations

import html as htmllib
import re
from urllib.parse import urljoin, urlsplit

PROVIDERS = (  # (provider, host pattern of the link in the mail)
    ("QQ邮箱", r"(?:wx\.)?mail\.qq\.com"),
    ("腾讯企业邮箱", r"exmail\.qq\.com"),
    ("网易邮箱", r"[\w.]*mail\.(?:163|126)\.com"),
    ("阿里邮箱", r"(?:qiye|mail|[\w.]*)\.aliyun\.com"),
    ("钉钉", r"[\w.]*dingtalk\.com"),
)
# What a file address on a page looks like, strongest first: (score, pattern)
_FILE_HINTS = (
    (5, re.compile(r"ftn_handler", re.I)),
    (5, re.compile(r"\.aliyuncs\.com/", re.I)),
    (4, re.compile(r"large-attachment-download/[^?#]*download|/(?:api/)?download\b[^\"'\s]*[?&](?:file|key|fid)=", re.I)),
    (4, re.compile(r"nosdn\.127\.net|\.126\.net/|\.netease\.com/[^\"'\s]*download", re.I)),
    (3, re.compile(r"[?&](?:fname|filename|attname|response-content-disposition)=", re.I)),
    (2, re.compile(r"download", re.I)),
)
_STATIC = re.compile(r"\.(?:js|css|png|jpe?g|gif|ico|svg|woff2?)(?:[?#]|$)", re.I)
_URLS = re.compile(r"""(?:href|src|data-url|data-href)\s*=\s*["']([^"']+)["']|["'](https?:(?:\\?/){2}[^"'\s<>]+)["']""",
                   re.I)


def provider_of(url: str) -> str | None:
    """Which provider's download page a link is, by its host (None: not a known one)."""
    host = urlsplit(url).hostname or ""
    for name, pattern in PROVIDERS:
        if re.fullmatch(pattern, host, re.I):
            return name
    return None


def _clean(raw: str) -> str:
    url = htmllib.unescape(raw).replace("\\/", "/").replace("\\u002F", "/").replace("\\u0026", "&")
    return url.strip()


def download_target(page: str, base: str) -> str | None:
    """The address of the file on a download page (absolute), or None when the page
    shows none (an expired link, a login page)."""
    best, best_score = None, 0
    page = re.sub(r"\\u002[fF]", "/", page or "").replace("\\/", "/").replace("\\u0026", "&")
    for m in _URLS.finditer(page):
        raw = m.group(1) or m.group(2)
        url = urljoin(base, _clean(raw))
        if not url.startswith(("http://", "https://")) or url == base or _STATIC.search(urlsplit(url).path):
            continue
        score = max((s for s, pattern in _FILE_HINTS if pattern.search(url)), default=0)
        if score > best_score:
            best, best_score = url, score
    return best
