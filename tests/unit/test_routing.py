"""Table-driven classification test: every case in tests/cases/routing.yaml through `route`.

The roster and rules are the YAML's own (not config/*.example.yaml). Each case's message is
built as bytes (raw RFC 5322 from the YAML, or an EmailMessage from a compact description)
and parsed by `mailbot.parse.parse`, so the parser's auto-reply/bounce flags, signature and
threading headers feed `route` exactly as in production. Cases marked `xfail` are known
misclassifications (strict: a fix makes the marker fail, so it must then be removed).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path

import pytest
import yaml

from mailbot import config
from mailbot.config import Settings
from mailbot.read.parse import parse
from mailbot.routing import KINDS, Directory, clean_title, find_tracking, route

CASES_FILE = Path(__file__).resolve().parents[1] / "cases" / "routing.yaml"
DATA = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
MAIL_DOMAIN = DATA.get("mail_domain", "ly.shandong.cn")
MAILBOXES = ("skxkpb", "skxxhb", "skxdxb")
DEPARTMENTS = [
    {"key": "kepu", "name": "科普部", "prefix": "KP", "mailbox": "skxkpb"},
    {"key": "xuehui", "name": "学会部", "prefix": "XH", "mailbox": "skxxhb"},
    {"key": "diaoxuan", "name": "调宣部", "prefix": "DX", "mailbox": "skxdxb"},
]
EXPECT_KEYS = {"kind", "unit", "unit_known", "department", "tracking", "claimed_unit", "reason", "reason_lacks"}
CASE_KEYS = {"name", "proves", "mailbox", "raw", "raw_charset", "mail", "expect", "xfail"}
MAIL_KEYS = {"from", "from_name", "to", "cc", "subject", "text", "signature", "html", "attachments",
             "inline_images", "in_reply_to", "references", "headers"}

# Small but honest payloads, so the parser's content sniffing sees what the name says.
PAYLOADS = {
    "pdf": ("application", "pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
    "png": ("image", "png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32),
    "jpg": ("image", "jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"),
    "doc": ("application", "msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504),
    "docx": ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document",
             b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + b"\x00" * 40),
}


def settings() -> Settings:
    return Settings.model_validate({
        "mailboxes": [{"name": n, "host": f"imap.{MAIL_DOMAIN}", "user": f"{n}@{MAIL_DOMAIN}",
                       "password_env": "MAILBOT_TEST_PASSWORD"} for n in MAILBOXES],
        "departments": DEPARTMENTS,
        "organisation": "临沂市科协",
        "mail_domain": MAIL_DOMAIN,
        "units": DATA["roster"],
        "routing": {"default": DATA.get("default", "diaoxuan"), "unknown": DATA.get("unknown", "diaoxuan"),
                    "rules": DATA["rules"]},
    })


DIRECTORY = Directory.from_settings(settings())


def build_eml(spec: dict, mailbox: str, name: str) -> bytes:
    """An .eml from the compact description of a case (see the YAML's header)."""
    unknown = set(spec) - MAIL_KEYS
    assert not unknown, f"unknown mail keys {unknown}"
    msg = EmailMessage()
    msg["From"] = formataddr((spec.get("from_name", ""), spec["from"]))
    msg["To"] = spec.get("to", f"{mailbox}@{MAIL_DOMAIN}")
    if spec.get("cc"):
        msg["Cc"] = spec["cc"]
    msg["Subject"] = spec.get("subject", "")
    msg["Date"] = "Mon, 16 Mar 2026 09:12:45 +0800"
    msg["Message-ID"] = f"<case.{name}@test.invalid>"
    if spec.get("in_reply_to"):
        msg["In-Reply-To"] = spec["in_reply_to"]
    if spec.get("references"):
        msg["References"] = spec["references"]
    for key, value in (spec.get("headers") or {}).items():
        msg[key] = str(value)
    text = spec.get("text", "") or ""
    if spec.get("signature"):
        text = text.rstrip("\n") + "\n\n" + spec["signature"]
    msg.set_content(text)
    if spec.get("html") or spec.get("inline_images"):
        msg.add_alternative(spec.get("html") or f"<p>{text}</p>", subtype="html")
        html_part = msg.get_payload()[-1]
        for filename in spec.get("inline_images") or []:
            maintype, subtype, data = PAYLOADS[filename.rsplit(".", 1)[-1].lower()]
            cid = f"<{filename}@01DA7E1F.5B7C2D30>"
            html_part.add_related(data, maintype, subtype, cid=cid, filename=filename, disposition="inline")
    for filename in spec.get("attachments") or []:
        maintype, subtype, data = PAYLOADS[filename.rsplit(".", 1)[-1].lower()]
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def message_bytes(case: dict, mailbox: str) -> bytes:
    if "raw" in case:
        return case["raw"].replace("\r\n", "\n").replace("\n", "\r\n").encode(case.get("raw_charset", "utf-8"))
    return build_eml(case["mail"], mailbox, case["name"])


def arrivals(case: dict) -> list[str]:
    boxes = case["mailbox"]
    return list(boxes) if isinstance(boxes, list) else [boxes]


def params():
    out = []
    for case in DATA["cases"]:
        marks = [pytest.mark.xfail(reason=case["xfail"], strict=True, raises=AssertionError)] if case.get("xfail") else []
        out.append(pytest.param(case, id=case["name"], marks=marks))
    return out


def test_cases_are_well_formed():
    names = [c["name"] for c in DATA["cases"]]
    assert len(names) == len(set(names)), "duplicate case names"
    for case in DATA["cases"]:
        assert set(case) <= CASE_KEYS, (case["name"], set(case) - CASE_KEYS)
        assert ("raw" in case) != ("mail" in case), f"{case['name']}: exactly one of raw / mail"
        assert set(case["expect"]) <= EXPECT_KEYS, (case["name"], set(case["expect"]) - EXPECT_KEYS)
        assert case["expect"]["kind"] in KINDS, case["name"]
        assert all(box in MAILBOXES for box in arrivals(case)), case["name"]
        assert case["expect"]["reason"], f"{case['name']}: give at least one reason fragment"
        fragments = [*case["expect"]["reason"], *(case["expect"].get("reason_lacks") or [])]
        assert all(isinstance(f, str) for f in fragments), f"{case['name']}: quote fragments with ': '"


def test_case_configuration_is_valid():
    """The YAML's roster and rules pass the same cross-checks as config/mailbot.yaml."""
    assert config._cross_checks("routing.yaml", settings(), False) == []


@pytest.mark.parametrize("case", params())
def test_route(case):
    want = case["expect"]
    for mailbox in arrivals(case):
        mail = parse(message_bytes(case, mailbox))
        got = route(mail, DIRECTORY, mailbox)
        where = f"[{mailbox}] {got}"
        assert got.kind == want["kind"], where
        assert got.unit == want["unit"], where
        assert got.unit_known == want.get("unit_known", want["unit"] is not None), where
        assert got.department_name == want["department"], where
        if "tracking" in want:
            assert got.tracking == want["tracking"], where
        if "claimed_unit" in want:
            assert got.claimed_unit == want["claimed_unit"], where
        for fragment in want["reason"]:
            assert fragment in got.reason, f"reason lacks {fragment!r}: {where}"
        for fragment in want.get("reason_lacks") or []:
            assert fragment not in got.reason, f"reason must not say {fragment!r}: {where}"
        # The JSON summary (what a parse worker hands over) classifies the same way.
        assert route(mail.to_json(), DIRECTORY, mailbox) == got, where


def test_every_kind_but_form_is_covered():
    kinds = {c["expect"]["kind"] for c in DATA["cases"]}
    assert kinds >= set(KINDS) - {"form"}, set(KINDS) - kinds


# --- subjects -------------------------------------------------------------------------

CLEAN_TITLE = [
    # (subject, title)
    ("沂水县科普日活动", "沂水县科普日活动"),
    ("回复：沂水县科普日活动", "沂水县科普日活动"),                      # QQ / 163, full-width colon
    ("回复：RE: 回复：RE: 沂水县科普日活动", "沂水县科普日活动"),         # QQ stacks them
    ("答复: 转发: 沂水县科普日活动", "沂水县科普日活动"),                 # Outlook zh-CN
    ("Re: Fw: Fwd: 沂水县科普日活动", "沂水县科普日活动"),
    ("RE：FW：沂水县科普日活动", "沂水县科普日活动"),
    ("Re:Re:沂水县科普日活动", "沂水县科普日活动"),
    ("AW: WG: 沂水县科普日活动", "沂水县科普日活动"),                     # German Outlook
    ("轉寄：回覆：沂水縣科普日活動", "沂水縣科普日活動"),
    ("回复：[KP-2026-0042] 沂水县科普日活动", "沂水县科普日活动"),       # our tracking tag
    ("回复：［KP－2026－0042］沂水县科普日活动", "沂水县科普日活动"),     # full-width brackets
    ("回复：【KP-2026-0042】沂水县科普日活动", "沂水县科普日活动"),
    ("转发：回复：[KP-2026-0001] 转发：沂水县科普日活动", "沂水县科普日活动"),  # alternating
    ("【沂水县科协】沂水县科普日活动", "【沂水县科协】沂水县科普日活动"),  # a unit's tag stays
    ("回复：【沂水县科协】沂水县科普日活动", "【沂水县科协】沂水县科普日活动"),
    ("Report: 2026年第一季度", "Report: 2026年第一季度"),                # "Re" inside a word is no prefix
    ("回复：", "（无主题）"),
    ("", "（无主题）"),
    ("   ", "（无主题）"),
]


@pytest.mark.parametrize(("subject", "title"), CLEAN_TITLE, ids=[s or "(empty)" for s, _ in CLEAN_TITLE])
def test_clean_title(subject, title):
    assert clean_title(subject) == title


FIND_TRACKING = [
    # (subject, tracking number or None)
    ("[KP-2026-0042] 回执：已收到《沂水县科普日活动》", "KP-2026-0042"),
    ("回复：RE: 回复：[KP-2026-0042] 请初审", "KP-2026-0042"),
    ("回复：［KP－2026－0042］请初审", "KP-2026-0042"),                  # full-width brackets, hyphens
    ("回复：［ＫＰ－２０２６－００４２］请初审", "KP-2026-0042"),          # full-width letters and digits
    ("答复: [KP-2026-0042<https://ly.shandong.cn/kp/KP-2026-0042>] 请审核", "KP-2026-0042"),  # Outlook link
    ("Re: KP-2026-0042", "KP-2026-0042"),                                 # bare
    ("回复：[XH-2026-0003] 回执", "XH-2026-0003"),
    ("回复：[DX-2026-000123] 回执", "DX-2026-000123"),
    ("[AB-2026-0042] 回执", None),                                        # not one of our prefixes
    ("[AB-2026-0001][KP-2026-0042] 回执", "KP-2026-0042"),                 # the first of ours
    ("XKP-2026-0042", None),                                              # glued to a letter
    ("KP-2026-00421234", None),                                           # too many digits
    ("关于2026-03-16科普日活动的报道", None),                              # a date
    ("沂水县科普日活动", None),
    ("", None),
]


@pytest.mark.parametrize(("subject", "tracking"), FIND_TRACKING, ids=[s or "(empty)" for s, _ in FIND_TRACKING])
def test_find_tracking(subject, tracking):
    assert find_tracking(subject, DIRECTORY) == tracking
