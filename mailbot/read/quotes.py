"""Reply text, the pure part: what a reviewer newly wrote above (or below) the quoted
original, as Chinese and Western mail clients quote it, and the review command in it.

Client strings are data at the top of the module (sources: ../shared/CHINESE-MAIL.md §1).
"""

from __future__ import annotations

import functools
import html as htmllib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser

# --- client strings (extend here; every line is from a real client, see CHINESE-MAIL.md §1.1) ---

S = r"[ \t\u00a0\u3000]"  # horizontal space, NBSP and IDEOGRAPHIC SPACE included
COLON = r"[:：]"
WD = r"(?:周|星期)[一二三四五六日天]"
AMPM = r"(?:上午|下午|中午|晚上|凌晨|早上|傍晚)"

# Words between the dashes of a separator line: QQ/Exmail (18 dashes), Coremail and old
# Outlook (5), Thunderbird (8), 163 forward (8), Mail Master (4), Gmail forward (10/9).
SEPARATOR_WORDS = ("原始邮件", "原邮件", "原始消息", "回复的原邮件", "转发的邮件", "转发邮件信息",
                   "以下是转发邮件信息", "转发的消息", "Original Message", "Original", "Forwarded message",
                   "Reply Message")
# Labels of a quoted header block (Outlook, Foxmail, QQ, Coremail, Alimail with U+3000 inside
# labels, Mail Master); a block starts with one of HEADER_START_LABELS.
HEADER_LABELS = ("发件人", "发送时间", "发送日期", "已发送", "日期", "收件人", "至", "抄送", "主题",
                 "From", "Sent", "Date", "To", "Cc", "Subject", "Reply-To")
HEADER_START_LABELS = ("发件人", "From")
# Attribution lines ("… wrote:"), matched on up to 3 lines joined (Gmail wraps them).
ATTRIBUTIONS = (
    # 163/126 web, Apple Mail / iOS <= 16, Thunderbird: 在 … 写道： (a time or a year is required,
    # so prose such as "在第2段中作者写道：" does not match)
    rf"{S}*在{S}*(?=.*(?:\d{{1,2}}:\d{{2}}|\d{{4}}))[^\n]{{4,200}}?写道{S}*{COLON}{S}*",
    # Gmail zh-CN: Name <addr> 于2020年7月13日周一 上午4:56写道：
    rf".{{1,200}}?于{S}?\d{{4}}年\d{{1,2}}月\d{{1,2}}日{S}*(?:{WD})?{S}*(?:{AMPM})?{S}*\d{{1,2}}:\d{{2}}"
    rf"{S}*写道{S}*{COLON}{S}*",
    # iOS 17+: 2024年7月3日 18:51，Name <addr> 写道：
    rf"{S}*\d{{4}}年\d{{1,2}}月\d{{1,2}}日{S}*(?:{AMPM})?{S}*\d{{1,2}}:\d{{2}}[，,].{{1,200}}?写道{S}*{COLON}{S}*",
    # Thunderbird alternative: #1 写于 #2 #3:
    rf".{{1,200}}?{S}写于{S}(?=.*\d).{{4,60}}{COLON}{S}*",
    # English (163/QQ English UI, Gmail, Outlook, Apple): On/At … wrote:
    rf"{S}*(?:At|On){S}(?=.*\d).{{4,200}}?wrote{S}*:{S}*",
    # Gmail before 2017, every UI language: 2016-10-24 15:36 GMT+08:00 Name <addr>:
    rf"{S}*\d{{4}}-\d{{2}}-\d{{2}}{S}+\d{{1,2}}:\d{{2}}{S}+GMT[+-]\d{{2}}:\d{{2}}{S}.{{1,200}}:{S}*",
)
# "Name 写道:" / "Name wrote:" count only when a `>` quote follows (Thunderbird's #1 写道:).
WROTE_BEFORE_QUOTE = rf".{{1,200}}?(?:写道|wrote){S}*{COLON}{S}*"
FORWARD_LINES = (r"Begin forwarded message:",)  # Apple Mail
# Mobile and client footers dropped from the end of the new text.
FOOTERS = (
    r"发自我的\s?[\w .-]{1,24}",  # 发自我的iPhone / iPad / Windows Phone / 华为手机 …
    r"發自我的\s?[\w .-]{1,24}",
    r"从我的\s?\w{1,20}\s?发送", r"從我的\s?\w{1,20}\s?傳送",
    r"发自网易邮箱大师", r"来自钉钉专属商务邮箱",
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # Foxmail's default signature: the address alone
    r"Sent from my [\w .-]{1,40}", r"Sent from Outlook(?: Mobile)?\b.*", r"Get Outlook for (?:iOS|Android)\b.*",
)
SIGNATURE_DELIMITER = r"--[ \t]?"  # "-- ", often with its trailing space lost
# HTML quote containers (ProtonMail's BLOCKQUOTE_SELECTORS plus Mail Master): (tag or *, attribute,
# value); a class value is one of the element's classes, other values match whole.
HTML_QUOTE_CONTAINERS = (
    ("*", "class", "gmail_quote"), ("div", "class", "gmail_extra"), ("*", "id", "divRplyFwdMsg"),
    ("hr", "id", "replySplit"), ("*", "class", "moz-cite-prefix"), ("div", "id", "isForwardContent"),
    ("blockquote", "id", "isReplyContent"), ("div", "id", "mailcontent"), ("div", "id", "origbody"),
    ("div", "id", "reply139content"), ("blockquote", "id", "oriMsgHtmlSeperator"),
    ("blockquote", "type", "cite"), ("*", "name", "quote"), ("div", "class", "ntes-mailmaster-quote"),
)
HTML_LEFTOVER = r"<(?:!doctype|html|head|body|div|p|br|span|table|blockquote|font)\b[^>]*>"

# --- review command words (matched after NFKC: ：→:  ，→,  ＯＫ→OK  U+3000→space) ---

RETURN_WORDS = ("不予通过", "不予采用", "不通过", "未通过", "不同意", "不采用", "不批准", "退回", "驳回", "打回",
                "退稿", "修改后再报", "修改后重报", "不通過", "未通過", "不予通過", "駁回")  # last four: zh-Hant
APPROVE_STRONG = ("审核通过", "初审通过", "通过", "同意", "批准", "采用", "通過")
APPROVE_WEAK = ("没有问题", "没问题", "可以", "可发", "好的", "OK", "好", "可", "行")  # also mean "heard you"
APPROVE_FOLLOW = ("发布", "发表", "刊发", "刊登", "推送", "上报", "报送", "采用", "通过", "审核", "送审")
RETURN_FOLLOW = ("修改", "重写", "重报", "补充", "完善", "给", "至", "到")
# 转 X: 转 [发|交|送] [给|至|到|往] [: or spaces] + a configured department (names come from the
# caller, i.e. configuration; a short form without the final 部 is allowed). What may stand
# before 转 on the command line: a request or suggestion (请转…, 建议转…, 此稿转…).
REROUTE_VERB = "转"
REROUTE_VERB_TAILS = ("发", "交", "送")  # 转发给<dept>, 转交<dept>, 转送<dept>
REROUTE_TO = ("给", "至", "到", "往")  # 转给 / 转至 / 转到 / 转往
REROUTE_LEADS = ("烦请", "麻烦", "劳烦", "建议", "请", "拟", "需要", "需", "应该", "应", "最好", "还是", "直接",
                 "帮忙", "帮", "您", "你", "此稿", "该稿", "本稿", "此文", "该文", "此件", "这篇稿件", "这篇")
# Right after a short form (the name without its last character) only these may follow, so 转<dept-short>员单位 is no reroute.
REROUTE_SHORT_FOLLOW = ("处理", "审核", "审阅", "审定", "审批", "审", "办理", "办", "核", "看", "阅", "定",
                        "研究", "把关", "负责", "跟进", "一下", "吧", "了", "啊", "呀", "的", "老师", "领导")
# 转 + these, with no configured department after, is no reroute ("转发给大家学习", "转载"): asked.
NOT_REROUTE = ("转发", "转载", "转帖", "转贴", "转正", "转达", "转告", "转账", "转换", "转变", "转向", "转入",
               "转出", "转移", "转让", "转型", "转化", "转而")
# 已转<dept> states that someone already forwarded it: not a command (asked, nothing moves).
ALREADY = r"(?:已经|早已|已)"
ACK_LEAD = r"(?:(?:好的|好|嗯|OK)[\s,.。!~]*)?(?:已收到|收到|已阅|已读|知道了|知悉|明白|了解|谢谢|感谢|多谢)"
ACK_ANYWHERE = r"收到|已阅|看一?下|看看|再看|明天看|稍后|晚点|回头|抽空|在看|考虑|研究|商量"
TITLES = "老师|同志|主任|部长|科长|处长|书记|主席|秘书长|领导|经理|总"
GREETING = (rf"(?:(?:尊敬的)?[\u4e00-\u9fffA-Za-z·]{{0,6}}?(?:{TITLES})们?{S}*(?:您好|你好|好)?|各位(?:领导|老师)?好?"
            rf"|大家好|您好|你好|(?:hi|hello|dear)\b[^,:\n]{{0,30}})(?:[\s,:;!.。~]+|$)")
PLACEHOLDER_REASONS = ("(请写明原因)",)  # our own mailto: body, sent unedited (after NFKC)
SEPARATORS = " \t\u00a0\u3000:：,，.。;；、-—~～!！"

# --- compiled ---

_DASH_SEP = re.compile(rf"{S}*\**{S}*-{{2,}}{S}*(?:{'|'.join(w.replace(' ', f'{S}+') for w in SEPARATOR_WORDS)})"
                       rf"{S}*-{{2,}}{S}*\**{S}*$", re.I)
_RULE = re.compile(rf"{S}*(?:_{{10,}}|-{{20,}}|—{{10,}}){S}*$")
_LABEL = "|".join(f"{S}*".join(label) if not label.isascii() else label for label in HEADER_LABELS)
_HEADER_LINE = re.compile(rf"{S}*[|]?{S}*\*{{0,2}}{S}*(?:{_LABEL}){S}*\*{{0,2}}{S}*(?:{COLON}|\|)", re.I)
_START_LABEL = "|".join(f"{S}*".join(label) if not label.isascii() else label for label in HEADER_START_LABELS)
_HEADER_START = re.compile(rf"{S}*[|]?{S}*\*{{0,2}}{S}*(?:{_START_LABEL})", re.I)
_ATTRIBUTIONS = tuple(re.compile(p + "$", re.I) for p in ATTRIBUTIONS)
_WROTE_BEFORE_QUOTE = re.compile(WROTE_BEFORE_QUOTE + "$", re.I)
_FORWARD = re.compile(rf"{S}*(?:{'|'.join(FORWARD_LINES)}){S}*$", re.I)
_FOOTER = re.compile(rf"\s*(?:{'|'.join(FOOTERS)})\s*$", re.I)
_SIGNATURE = re.compile(SIGNATURE_DELIMITER + "$")
_QUOTE_MARKS = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_LEFTOVER = re.compile(HTML_LEFTOVER, re.I)
_SPACES = re.compile(r"\s+")


def _alt(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_BOUNDARY = r"(?=$|[\s,.;:!。、…~\-—)\]】」』”’\"'])"
_RETURN = re.compile(rf"(?P<kw>{_alt(RETURN_WORDS)})(?:{S}*(?:原因|理由|意见)(?:如下|是|为)?)?"
                     rf"(?:[吧了啊]|{_BOUNDARY}|(?={_alt(RETURN_FOLLOW)}))", re.I)
_RETURN_ANY = re.compile(_alt(RETURN_WORDS))
_APPROVE_END = rf"[吧了啊呀哈啦的]{{0,2}}(?:{_BOUNDARY}|(?={_alt(APPROVE_FOLLOW)}))"
_APPROVE_STRONG = re.compile(rf"(?:{_alt(APPROVE_STRONG)}){_APPROVE_END}", re.I)
_APPROVE_WEAK = re.compile(rf"(?:{_alt(APPROVE_WEAK)}){_APPROVE_END}", re.I)
_REROUTE_LEAD = rf"(?:(?:{_alt(REROUTE_LEADS)})[{S[1:-1]}:,]*){{0,3}}"
_REROUTE_VERB = (rf"{re.escape(REROUTE_VERB)}(?:{_alt(REROUTE_VERB_TAILS)})?(?:{_alt(REROUTE_TO)})?"
                 rf"[{S[1:-1]}:]*")
_REROUTE = re.compile(_REROUTE_LEAD + _REROUTE_VERB)  # 转 with or without a department after it
_SHORT_END = rf"(?=$|[\s,.;:!?。、…~\-—()\]】」』”’\"']|{_alt(REROUTE_SHORT_FOLLOW)})"
_NOT_REROUTE = re.compile(_REROUTE_LEAD + rf"(?P<word>{_alt(NOT_REROUTE)})")
_ALREADY = re.compile(rf"{ALREADY}{S}*{re.escape(REROUTE_VERB)}")
_ACK_LEAD = re.compile(ACK_LEAD + r"[了啦啊的]?[\s,.。!~]*", re.I)
_ACK_ANY = re.compile(ACK_ANYWHERE)
_GREETING = re.compile(GREETING, re.I)
_OPENERS = re.compile(r"[\s\"'“‘「『【\[(]*")


# --- new text ---------------------------------------------------------------------------


def new_text(text: str, html: str | None = None) -> str:
    """What the replier wrote: the text before the first quote marker, without trailing
    `>` lines, client footers and a `-- ` signature. The plain text wins; the HTML is used
    (cut at its quote containers, then converted) when the text is empty or HTML itself."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    html = html.replace("\r\n", "\n") if html else html
    if text.lstrip().startswith("<") and len(_LEFTOVER.findall(text)) >= 2:  # HTML sent as text
        html, text = html or text, ""
    if html and (not text.strip() or _converted_from(text, html)):
        text = _html_to_text(_cut_html(html))
    leaked = "&nbsp;" in text  # QQ's text/plain leaks entities into every line
    lines = _trim(text.split("\n"))
    if leaked:
        lines = [htmllib.unescape(line.replace("&nbsp;", " ")) for line in lines]
    return "\n".join(line.replace("\u00a0", " ").rstrip() for line in lines).strip()


def _norm(line: str) -> str:
    """A line as the marker regexes see it: entities decoded, `>` marks stripped."""
    line = htmllib.unescape(line.replace("&nbsp;", " "))
    return _QUOTE_MARKS.sub("", line).rstrip()


def _quoted(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith(">") or stripped.startswith("&gt;")


def _trim(lines: list[str]) -> list[str]:
    """Cut at the first marker; a reply written below a `>` quote is kept (bottom-posting)."""
    norms = [_norm(line) for line in lines]
    for i in range(len(lines)):
        found = _marker_at(norms, lines, i)
        if found is None:
            continue
        start, end, attribution = found
        if attribution and not any(line.strip() for line in lines[:start]):
            below = _below_quote(lines, end + 1)
            if below is not None:
                return _trim(below)
        return _clean_tail(lines[:start])
    return _clean_tail(lines)


def _marker_at(norms: list[str], lines: list[str], i: int) -> tuple[int, int, bool] | None:
    """(first line, last line, is-attribution) of a quote marker ending at line i."""
    line = norms[i]
    if _DASH_SEP.match(line) or _FORWARD.match(line):
        return i, i, False
    if _RULE.match(line) and any(_HEADER_LINE.match(x) for x in norms[i + 1:i + 3]):
        return i, i, False
    if _HEADER_START.match(line) and _HEADER_LINE.match(line):
        following = [x for x in norms[i + 1:i + 3] if x.strip()]
        if following and _HEADER_LINE.match(following[0]):
            return i, i, False
    for start in (i, i - 1, i - 2):  # Gmail and others wrap the attribution line
        if start < 0 or not all(x.strip() for x in norms[start:i + 1]):
            break
        joined = " ".join(x.strip() for x in norms[start:i + 1])
        if any(p.match(joined) for p in _ATTRIBUTIONS):
            while start > 0 and norms[start - 1].count("<") > norms[start - 1].count(">"):
                start -= 1  # "Name <" wrapped before the address
            return start, i, True
    if _WROTE_BEFORE_QUOTE.match(line) and not _quoted(lines[i]):
        after = next((x for x in lines[i + 1:] if x.strip()), "")
        if _quoted(after):
            return i, i, True
    return None


def _below_quote(lines: list[str], i: int) -> list[str] | None:
    """The text after the `>` block that follows an attribution, if there is any."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not _quoted(lines[i]):
        return None
    while i < len(lines) and (_quoted(lines[i]) or not lines[i].strip()):
        i += 1
    return lines[i:] if i < len(lines) else None


def _clean_tail(lines: list[str]) -> list[str]:
    """Drop the signature after `-- `, then trailing blank, `>` and footer lines."""
    for k, line in enumerate(lines):
        if _SIGNATURE.match(line):
            lines = lines[:k]
            break
    while lines and (not lines[-1].strip() or _quoted(lines[-1]) or _FOOTER.match(_norm(lines[-1]))):
        lines = lines[:-1]
    return lines


# --- HTML ---------------------------------------------------------------------------------


class _QuoteFinder(HTMLParser):
    """Finds where the first quote container (or QQ's 原始邮件 div) starts."""

    _VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cut: tuple[int, int] | None = None
        self.open: list[tuple[str, tuple[int, int]]] = []

    def handle_starttag(self, tag, attrs):
        if self.cut is None and _is_quote_container(tag, attrs):
            self.cut = self.getpos()
        elif tag not in self._VOID:
            self.open.append((tag, self.getpos()))

    def handle_endtag(self, tag):
        for k in range(len(self.open) - 1, -1, -1):
            if self.open[k][0] == tag:
                del self.open[k:]
                break

    def handle_data(self, data):
        if self.cut is None and any(_DASH_SEP.match(x) for x in data.split("\n")):
            self.cut = self.open[-1][1] if self.open else self.getpos()


def _is_quote_container(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    values = {k.lower(): (v or "") for k, v in attrs}
    for want_tag, attr, want in HTML_QUOTE_CONTAINERS:
        if want_tag not in ("*", tag) or attr not in values:
            continue
        got = values[attr]
        if (want in got.split()) if attr == "class" else got.lower() == want.lower():
            return True
    return False


def _cut_html(html: str) -> str:
    """The HTML before its first quote container."""
    finder = _QuoteFinder()
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # a broken document: keep it whole, the text rules still cut
        return html
    if finder.cut is None:
        return html
    line, col = finder.cut
    offset = sum(len(x) + 1 for x in html.split("\n")[: line - 1]) + col
    return html[:offset]


def _converted_from(text: str, html: str) -> bool:
    """Is the text part only this HTML converted (as mailbot.parse gives for HTML-only mail)?"""
    return _SPACES.sub("", text) == _SPACES.sub("", _html_to_text(html))


def _html_to_text(html: str) -> str:
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    try:  # the strict profile does not indent nested blocks, so lines start where the writer's did
        return get_text(html, ParserConfig(css=CSS_PROFILES["strict"])).replace("\r\n", "\n")
    except Exception:  # a broken document: fall back to stripping tags
        return htmllib.unescape(re.sub(r"<[^>]+>", " ", html))


# --- review command -----------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A reviewer's reply, read: approve | return | reroute | ask, or None (not a decision)."""

    decision: str | None
    reason: str | None
    target: str | None
    why: str


def read_command(text: str, targets: Iterable[str]) -> Command:
    """The review command at the start of the new text (the output of `new_text`);
    `targets` are the configured department names (`settings.departments`).

    Rules: quoted `>` lines are never read; up to two greeting lines or prefixes
    ("王老师：", "您好，") are skipped; the command must open the next line. 退回-words
    (不通过 included) → return, with the rest of the text as the reason (None if empty);
    转 + a configured department → reroute, as people write it: 转：<dept>, 转 <dept>, 转给/转至/
    转到/转发给<dept>, 请转<dept>处理, 建议转<dept>, 转<dept>审核, the short form without 部 (ASCII
    or full-width colon and spaces). 转 + anything else (转 宣传部, 转发给大家学习, 转载, 转正, a
    bare 转) → ask; so is 已转<dept> (a statement that it was forwarded, not a command). A
    reroute with 通过/同意 … or a return word after it is contradictory → ask. 通过/同意/OK/好 …
    → approve, unless a return word or a 转 + department also appears anywhere (contradiction → ask).
    收到/已阅/我看一下 … → None (acknowledgement: change nothing, ask nothing), unless a
    strong decision follows it ("收到，同意"); "好的，我看一下" is an acknowledgement too.
    Empty or anything else → ask.
    """
    lines = [line.strip() for line in (text or "").split("\n") if not _quoted(line)]
    norms = [_nfkc(line) for line in lines]
    found = _command_start(norms)
    if found is None:
        why = "greeting only" if any(norms) else "empty reply"
        return Command("ask", None, None, why)
    i, pos = found
    whole = "\n".join(norms[i:])
    decision, end, target, why = _classify(norms[i], pos, whole, _aliases(targets), weak=True)
    reason = _reason(lines[i], end, lines[i + 1:]) if decision == "return" else None
    return Command(decision, reason, target, why)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _command_start(norms: list[str]) -> tuple[int, int] | None:
    """(line, position) where the command should be: after blank lines and greetings."""
    i, pos, skipped = 0, 0, 0
    while i < len(norms):
        line = norms[i]
        if pos >= len(line):
            i, pos = i + 1, 0
            continue
        pos = _OPENERS.match(line, pos).end()
        greeting = _GREETING.match(line, pos)
        if skipped < 2 and greeting and greeting.end() > pos and not _starts_command(line, pos):
            skipped, pos = skipped + 1, greeting.end()
            continue
        if pos < len(line):
            return i, pos
    return None


def _starts_command(line: str, pos: int) -> bool:
    return any(p.match(line, pos) for p in (_RETURN, _REROUTE, _APPROVE_STRONG, _APPROVE_WEAK, _ACK_LEAD))


def _aliases(targets: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(written form, department) pairs, longest first: a name and its short form → the name."""
    if isinstance(targets, str):
        targets = [targets]
    pairs = [(_nfkc(target), target) for target in targets]
    fulls = {full for full, _target in pairs}
    for full, target in list(pairs):
        if full.endswith("部") and len(full) > 2 and full[:-1] not in fulls:  # a full name wins
            pairs.append((full[:-1], target))
    return tuple(sorted(pairs, key=lambda p: len(p[0]), reverse=True))


@functools.lru_cache(maxsize=16)
def _reroute_to(aliases: tuple[tuple[str, str], ...]) -> re.Pattern | None:
    """转 (with its leads and particles) + one of the written forms, as group `dept`; a short
    form must end at a boundary or before a word such as 处理 / 审核."""
    if not aliases:
        return None
    forms = [re.escape(written) + ("" if written == _nfkc(target) else _SHORT_END) for written, target in aliases]
    return re.compile(rf"{_REROUTE_LEAD}{_REROUTE_VERB}(?P<dept>{'|'.join(forms)})")


def _reroute_match(aliases, line: str, pos: int) -> tuple[re.Match, str] | None:
    """(match, department) for 转 + a configured department at `pos`."""
    pattern = _reroute_to(aliases)
    m = pattern.match(line, pos) if pattern else None
    return (m, dict(aliases)[m.group("dept")]) if m else None


def _reroute_anywhere(aliases, text: str) -> str | None:
    """The written department of a 转 + configured department anywhere in the text."""
    pattern = _reroute_to(aliases)
    m = pattern.search(text) if pattern else None
    return m.group("dept") if m else None


def _classify(line: str, pos: int, whole: str, aliases, weak: bool) -> tuple[str | None, int, str | None, str]:
    """(decision, end of the keyword, target, why) for the command starting at `pos`."""
    if weak and (ack := _ACK_LEAD.match(line, pos)):
        decision, end, target, why = _classify(line, ack.end(), whole, aliases, weak=False)
        if end > ack.end():  # a command word follows the acknowledgement
            return decision, end, target, f"{why} after an acknowledgement"
        return None, pos, None, "acknowledgement"
    if m := _RETURN.match(line, pos):
        return "return", m.end(), None, f"return keyword {m.group('kw')!r}"
    if _ALREADY.match(line, pos):
        return "ask", pos, None, "already forwarded (a statement, not a command)"
    if found := _reroute_match(aliases, line, pos):
        m, target = found
        if other := _RETURN_ANY.search(whole, m.end()) or _APPROVE_STRONG.search(whole, m.end()):
            return "ask", m.end(), None, f"contradictory: reroute to {target} and {other.group(0).strip()!r}"
        return "reroute", m.end(), target, f"reroute to {target}"
    if m := _NOT_REROUTE.match(line, pos):
        return "ask", pos, None, f"{m.group('word')!r} is not a reroute (no configured department follows)"
    if m := _REROUTE.match(line, pos):
        word = re.split(r"[\s,.;:!?。、]", line[m.end():], maxsplit=1)[0]
        return "ask", m.end(), None, f"reroute to an unknown department {word!r}"
    m = _APPROVE_STRONG.match(line, pos) or (_APPROVE_WEAK.match(line, pos) if weak else None)
    if m:
        return _approve(m, line, whole, aliases)
    if weak and _ACK_ANY.search(line, pos):
        return None, pos, None, "acknowledgement"
    return "ask", pos, None, "no command at the start of the first line"


def _approve(m: re.Match, line: str, whole: str, aliases) -> tuple[str | None, int, str | None, str]:
    keyword = m.group(0).strip()
    if m.re is _APPROVE_WEAK and _ACK_ANY.search(line, m.end()):
        return None, m.end(), None, f"acknowledgement ({keyword!r} then a later look)"
    if other := _RETURN_ANY.search(whole):
        return "ask", m.end(), None, f"contradictory: approve {keyword!r} and return {other.group(0)!r}"
    if written := _reroute_anywhere(aliases, whole):
        return "ask", m.end(), None, f"contradictory: approve {keyword!r} and reroute to {written!r}"
    return "approve", m.end(), None, f"approve keyword {keyword!r}"


def _reason(line: str, end: int, following: list[str]) -> str | None:
    """The original text after the return keyword, across the following lines."""
    k = 0
    while k < len(line) and len(unicodedata.normalize("NFKC", line[:k])) < end:
        k += 1
    reason = "\n".join([line[k:], *following]).strip().lstrip(SEPARATORS).strip()
    for placeholder in PLACEHOLDER_REASONS:
        if _nfkc(reason) == placeholder:
            return None
    return reason or None


# --- a unit's reply in a 稿件's thread (no review token, no files) ---

ACK_WORDS = ("已收到", "收到", "好的", "好滴", "好", "嗯", "ok", "谢谢", "感谢", "多谢", "辛苦了", "辛苦", "明白",
             "知道了", "知悉", "了解", "已阅", "收悉", "麻烦了", "麻烦您了", "给您添麻烦了")
ACK_FILLERS = ("老师", "领导", "您", "你", "们", "的", "了", "啦", "哈", "啊", "呀", "呢", "哦", "嗯", "非常",
               "十分", "很", "大家", "各位")
REVISION_LEAD = (r"已(?:按要求|按意见|根据意见|经)?(?:修改|修订|补充|更正)|修改稿|修订稿|修改后|补充后|更正后|修改如下"
                 r"|重新(?:提交|报送|发送|上报)|再次(?:提交|报送)|第\s*[2-9二三四五六]\s*版|修改版|新版本")
REVISION_MIN = 30  # characters (letters and CJK) of text beside the lead-in that make a revision
REVISION_LONG = 150  # a reply this long is the revised text itself, lead-in or not

_ACK_WORD = re.compile("|".join(sorted((re.escape(w) for w in ACK_WORDS + ACK_FILLERS), key=len, reverse=True)),
                       re.I)
_REVISION_LEAD = re.compile(REVISION_LEAD)
_NOT_WORD = re.compile(r"[\W_]+")


def reply_intent(text: str) -> str:
    """What a unit's reply to one of our mails about a 稿件 is, from its new text (the
    output of `new_text`), when it carries no file and no review token:

    'ack' (收到 / 好的 / 谢谢 … alone: needs no answer), 'revision' (the revised 稿件 written
    in the body: a revision lead-in such as 已修改 with at least REVISION_MIN characters of
    text, or any text of REVISION_LONG characters), 'question' (anything else: a person
    reads it), or 'empty'."""
    plain = _nfkc(text or "")
    words = _NOT_WORD.sub("", plain)
    if not words:
        return "empty"
    if len(words) <= 24 and len(_NOT_WORD.sub("", _ACK_WORD.sub("", words))) <= 1:
        return "ack"
    lead = _REVISION_LEAD.search(plain[:200])
    if lead and len(_NOT_WORD.sub("", plain[lead.end():])) >= REVISION_MIN or len(words) >= REVISION_LONG:
        return "revision"
    return "question"


_PUBLISHED = re.compile(r"^(?:[^\n]{0,8}?[,，:：]\s*)?(?:已经?|均已|现已)(?:在公众号|在微信公众号|在网站)?(?:发布|推送|刊发|刊登|上线|发出)"
                        r"|^(?:发布|推送)(?:了|完成|完毕)")


def says_published(text: str) -> bool:
    """The publisher's answer to a 可以发布 mail: 已发布 / 已推送 / 已在公众号发布 … at the start
    of the new text, not a question (已发布了吗？)."""
    plain = _nfkc(text or "")
    first = next((line for line in plain.split("\n") if line.strip()), "")
    return bool(_PUBLISHED.search(first)) and not re.search(r"[吗?？]", first)


_APPROVE_LEAD = re.compile(r"^\s*(?:通过|同意|可以|OK|好的?|没问题)[\s,，。.!！;；:：]*", re.I)


def approval_words(text: str) -> str | None:
    """What an approving reviewer wrote besides 通过 (通过，标题可以再短一些 → 标题可以再短一些),
    for the next stage and the publisher; None when nothing."""
    lines = [line for line in (text or "").strip().split("\n") if not _quoted(line)]
    words = _APPROVE_LEAD.sub("", "\n".join(lines).strip(), count=1).strip()
    return words[:500] or None
