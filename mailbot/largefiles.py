"""The only HTTP: 超大附件 links followed to the file (httpx), streamed to the staging
folder with a size limit, a timeout and retries, so that a large-attachment link is filed
and forwarded like an attachment before it expires.

A link's page (QQ Mail, Exmail, NetEase 163/126, Aliyun, DingTalk) is read by
`read.downloads.download_target`; a response that is a file (an attachment disposition, or
anything but HTML) is the file. What cannot be fetched comes back with the reason, for the
operator's alert.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from mailbot.models import Staged
from mailbot.read.downloads import download_target
from mailbot.read.parse import safe_name
from mailbot.read.usable import check_attachment

log = logging.getLogger("mailbot.largefiles")
PAGE_BYTES = 2 * 1024 * 1024  # a download page larger than this is not a page
MAX_HOPS = 3  # page → page → file


class FetchError(Exception):
    """A link that gave no file; `permanent` when retrying cannot help (too large, no file)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Fetched:
    url: str
    staged: Staged | None
    error: str | None = None


def fetch_all(links, folder: Path, cfg: dict, start: int = 1) -> list[Fetched]:
    """Every link with an address, each to a file in `folder` (named L001 …) or a reason."""
    out = []
    with httpx.Client(timeout=cfg.get("timeout", 60.0), follow_redirects=True, proxy=cfg.get("proxy"),
                      headers={"User-Agent": "Mozilla/5.0 (mailbot)"}) as client:
        for i, link in enumerate(links, start):
            if not link.url:
                continue
            out.append(_with_retries(client, link, folder / f"L{i:03d}", cfg))
    return out


def _with_retries(client, link, path: Path, cfg: dict) -> Fetched:
    attempts = max(1, int(cfg.get("retries", 3)))
    error = "未知错误"
    for attempt in range(1, attempts + 1):
        try:
            return Fetched(link.url, _fetch(client, link, path, int(cfg.get("max_bytes", 1 << 30))))
        except FetchError as exc:
            error = str(exc)
            if exc.permanent:
                break
        except httpx.HTTPError as exc:
            error = f"无法下载（{type(exc).__name__}）"
        path.unlink(missing_ok=True)
        if attempt < attempts:
            time.sleep(min(float(cfg.get("retry_delay", 2.0)) * attempt, 30.0))
    path.unlink(missing_ok=True)
    log.warning("large attachment %s not fetched: %s", link.name or link.url[:60], error)
    return Fetched(link.url, None, error)


def _fetch(client: httpx.Client, link, path: Path, max_bytes: int) -> Staged:
    url = link.url
    for _hop in range(MAX_HOPS):
        with client.stream("GET", url) as resp:
            if resp.status_code in (404, 410):
                raise FetchError(f"链接已失效（HTTP {resp.status_code}）", permanent=True)
            if resp.status_code >= 400:
                raise FetchError(f"下载服务器返回 HTTP {resp.status_code}", permanent=resp.status_code < 500)
            if _is_file(resp):
                return _save(resp, link, path, max_bytes)
            page = b""
            for chunk in resp.iter_bytes():
                page += chunk
                if len(page) > PAGE_BYTES:
                    raise FetchError("下载页面过大，无法识别", permanent=True)
            target = download_target(page.decode(resp.encoding or "utf-8", "replace"), str(resp.url))
        if target is None:
            raise FetchError("下载页面上没有找到文件（链接可能已过期，或需要登录）", permanent=True)
        url = target
    raise FetchError("下载页面跳转过多", permanent=True)


def _is_file(resp: httpx.Response) -> bool:
    if "attachment" in resp.headers.get("content-disposition", "").lower():
        return True
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype not in ("text/html", "application/xhtml+xml", "application/json", "text/javascript", "")


def _save(resp: httpx.Response, link, path: Path, max_bytes: int) -> Staged:
    declared = int(resp.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise FetchError(f"文件过大（{declared} 字节，上限 {max_bytes} 字节）", permanent=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as fh:
        for chunk in resp.iter_bytes(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"文件过大（超过上限 {max_bytes} 字节）", permanent=True)
            digest.update(chunk)
            fh.write(chunk)
    if declared and size != declared:
        raise FetchError(f"下载不完整（{size}/{declared} 字节）")
    name = _filename(resp) or link.name or unquote(Path(urlsplit(str(resp.url)).path).name) or "超大附件"
    ctype = resp.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    head = path.open("rb").read(1 << 20)
    found = check_attachment(name, ctype, head) if size <= 1 << 20 else None
    return Staged(str(path), name, safe_name(name, 1, ""), size, digest.hexdigest(), ctype or "application/octet-stream",
                  False, found.message if found else None)


def _filename(resp: httpx.Response) -> str | None:
    header = resp.headers.get("content-disposition")
    if not header:
        return None
    msg = Message()
    msg["content-disposition"] = header
    name = msg.get_filename()
    if name and re.search(r"[\x80-\xff]", name) and name.isascii() is False:
        try:
            name = name.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name
