"""Table test: the file's address on each provider's 超大附件 download page
(tests/cases/download_pages.yaml), and which links are a known provider's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailbot.read.downloads import download_target, provider_of

CASES = yaml.safe_load((Path(__file__).resolve().parents[1] / "cases" / "download_pages.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_download_target(case):
    assert download_target(case["page"], case["base"]) == case["expect"]


@pytest.mark.parametrize("url,provider", [
    ("https://wx.mail.qq.com/ftn/download?func=3&k=1", "QQ邮箱"),
    ("http://mail.qq.com/cgi-bin/ftnExs_download?k=1", "QQ邮箱"),
    ("https://exmail.qq.com/cgi-bin/ftnExs_download?k=1", "腾讯企业邮箱"),
    ("https://mail.126.com/large-attachment-download/index.html?file=x", "网易邮箱"),
    ("https://qiye.aliyun.com/alimail/bigattach/share?id=1", "阿里邮箱"),
    ("https://space.dingtalk.com/s/abc", "钉钉"),
    ("https://evil.example/ftnExs_download", None),
])
def test_provider_of(url, provider):
    assert provider_of(url) == provider
