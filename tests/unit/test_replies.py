"""Table-driven reply test: every case in tests/cases/replies.yaml through `new_text`
(exact text), then `read_command` (decision, reason, target); every case in
tests/cases/reroute.yaml through `read_command`; then `new_text` against Discourse's own
expectations for the inputs our trimmer is designed for. `read_command` gets the department
names configured in config/mailbot.example.yaml, as the robot passes `settings.departments`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailbot.read.quotes import Command, new_text, read_command

TESTS = Path(__file__).resolve().parents[1]
CASES = yaml.safe_load((TESTS / "cases" / "replies.yaml").read_text(encoding="utf-8"))
CASE_IDS = [c["name"] for c in CASES]
REROUTE = yaml.safe_load((TESTS / "cases" / "reroute.yaml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((TESTS.parent / "config" / "mailbot.example.yaml").read_text(encoding="utf-8"))
TARGETS = [d["name"] for d in CONFIG["departments"]]
DISCOURSE = TESTS / "mail" / "replies" / "discourse"

# discourse/email_reply_trimmer test/emails/<name>.txt → test/trimmed/<name>.txt, copied into
# tests/mail/replies/discourse/ (MIT; see its README.md). The subset our rules target:
DISCOURSE_CASES = [
    # Chinese attribution (Apple Mail zh, inside a `>` quote)
    "embedded_email_chinese",
    # English "On/At … wrote:", also wrapped over two lines, nested, and below the quote
    "embedded_email_1", "embedded_email_3", "embedded_email_6", "embedded_email_13", "dual_embedded",
    "embedded_ception", "embedded_email_quote_text", "spam_1",
    # Gmail's pre-2017 "2016-10-24 15:36 GMT+02:00 Name <addr>:" (every UI language, zh included)
    "embedded_email_14", "embedded_email_15",
    # dashed separators: "-------- Original Message --------", Gmail and Apple forwards
    "embedded_email_8", "embedded_email_9", "forwarded_gmail", "forwarded_apple",
    # Outlook header blocks (with and without a rule) and the Outlook Mobile footer
    "email_headers_1", "email_headers_2", "email_headers_3", "email_headers_5", "embedded_email_10",
    # no marker: leading quotes kept, trailing quotes and "-- " signatures dropped, text untouched
    "quote_and_text", "text_only", "strip", "normalize_line_endings", "retains_spaces_and_formatting",
    "block_code_spacers", "embedded_email_16", "embedded_email_19", "usenet", "spam_2",
]
# Left out on purpose: attributions in other languages (dutch_2, french_*, german_*, …) and
# Zoho's "---- On … wrote ----" (embedded_email_2); "2013/7/20 name <addr>" and bare "Name wrote:"
# with no `>` quote after (embedded_email_4, _5, _11, _12); an attribution as the first line
# with the quote unmarked (_17, _18) or text interleaved (_7): we return "" or cut at the
# first marker, so a reviewer is asked rather than misread; Western mobile footers
# (signatures), bare "--"/"~~~" delimiter lines (delimiters), Italian header labels
# (email_headers_4); a forward with no text of its own (forwarded_message) and a reply that
# is only a quote (quote_only): Discourse keeps the quote, for us a quote is never new text.


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_new_text(case):
    assert new_text(case.get("text") or "", case.get("html")) == case["expect"]["new_text"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_read_command(case):
    want = case["expect"]
    command = read_command(new_text(case.get("text") or "", case.get("html")), TARGETS)
    got = {"decision": command.decision, "reason": command.reason, "target": command.target}
    assert got == {k: want[k] for k in ("decision", "reason", "target")}, command.why
    assert want.get("why", "") in command.why


def test_case_names_are_unique():
    assert len(set(CASE_IDS)) == len(CASE_IDS)
    assert len({c["name"] for c in REROUTE}) == len(REROUTE)


@pytest.mark.parametrize("case", REROUTE, ids=[c["name"] for c in REROUTE])
def test_reroute_table(case):
    command = read_command(case["text"], case.get("targets", TARGETS))
    assert (command.decision, command.target) == (case["decision"], case["target"]), command.why
    assert command.reason is None
    assert case.get("why", "") in command.why


@pytest.mark.parametrize("name", DISCOURSE_CASES)
def test_discourse_corpus(name):
    text = (DISCOURSE / "emails" / f"{name}.txt").read_text(encoding="utf-8")
    want = (DISCOURSE / "trimmed" / f"{name}.txt").read_text(encoding="utf-8")
    assert new_text(text) == want.replace("\r\n", "\n").strip()


@pytest.mark.parametrize("text, decision, reason, target", [
    ("通过", "approve", None, None),
    ("通过。", "approve", None, None),
    ("ＯＫ", "approve", None, None),
    ("ok啦", "approve", None, None),
    ("可发", "approve", None, None),
    ("“通过”", "approve", None, None),
    ("审核通过，谢谢", "approve", None, None),
    ("王总，通过", "approve", None, None),
    ("通过吗？", "ask", None, None),
    ("可以吗？", "ask", None, None),
    ("OK?", "ask", None, None),
    ("通过率太低，退回", "ask", None, None),
    ("好久没联系了", "ask", None, None),
    ("不同意", "return", None, None),
    ("未通过：查重率过高", "return", "查重率过高", None),
    ("不同意见如下", "ask", None, None),
    ("退回，这篇不能通过", "return", "这篇不能通过", None),
    ("退回原因：图片模糊", "return", "图片模糊", None),
    ("退回\n\n理由见附件批注", "return", "理由见附件批注", None),
    ("修改后再报", "return", None, None),
    ("您好，退回：第二段有误", "return", "第二段有误", None),
    ("转 调宣", "reroute", None, "调宣部"),
    ("转到科普部，谢谢", "reroute", None, "科普部"),
    ("转", "ask", None, None),
    ("通过，转学会部", "ask", None, None),
    ("收到，转宣传部", "ask", None, None),
    ("好的收到，退回：图片模糊", "return", "图片模糊", None),
    ("OK，明天发布", "approve", None, None),
    ("收到", None, None, None),
    ("已阅", None, None, None),
    ("谢谢！", None, None, None),
    ("好，我明天看", None, None, None),
    ("王老师：", "ask", None, None),
    ("> 通过\n> 退回", "ask", None, None),
    ("   \n\n", "ask", None, None),
])
def test_read_command_words(text, decision, reason, target):
    command = read_command(text, TARGETS)
    assert (command.decision, command.reason, command.target) == (decision, reason, target), command.why


def test_read_command_custom_targets():
    assert read_command("转 农技协部", ["农技协部", "科普部"]).target == "农技协部"
    assert read_command("转 学会部", ["科普部"]).decision == "ask"


def test_command_is_a_frozen_value():
    command = read_command("通过", TARGETS)
    assert isinstance(command, Command)
    with pytest.raises(AttributeError):
        command.decision = "return"  # type: ignore[misc]


HTML_ONLY = [c for c in CASES if c.get("html") and not (c.get("text") or "").strip()]


@pytest.mark.parametrize("case", HTML_ONLY, ids=[c["name"] for c in HTML_ONLY])
def test_html_only_mail_as_the_parser_gives_it(case):
    """For HTML-only mail mailbot.parse's text is the whole HTML converted (quote included):
    with the HTML passed too, the quote containers are still cut first."""
    from inscriptis import get_text

    assert new_text(get_text(case["html"]), case["html"]) == case["expect"]["new_text"]


def test_plain_text_wins_over_html_and_empty_text_falls_back():
    html = "<div>退回</div><blockquote type=\"cite\">通过</blockquote>"
    assert new_text("通过", html) == "通过"
    assert new_text("", html) == "退回"
    assert new_text("  \n", html) == "退回"
    assert new_text("", None) == ""
