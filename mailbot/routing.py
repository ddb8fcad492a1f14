"""Classification of a parsed message: what it is, which unit sent it, which department
reviews it, each decision with its reason (the rule and the evidence, in words).

Pure functions over `Mail` (or its JSON summary) and a `Directory` built from the
configuration; no I/O. The rules are data in config/mailbot.yaml, never code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace

from mailbot import review
from mailbot.read import quotes
from mailbot.models import Mail, Route, mail_from_json

KINDS = ("submission", "reply", "resubmission", "form", "auto_reply", "bounce", "other")


@dataclass(frozen=True)
class UnitEntry:
    name: str
    category: str
    parent: str | None = None
    aliases: tuple[str, ...] = ()
    addresses: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleEntry:
    name: str
    department: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory:
    """What routing needs to know, taken from the settings (picklable, for parse workers)."""

    units: tuple[UnitEntry, ...] = ()
    departments: dict[str, str] = field(default_factory=dict)  # key -> name
    prefixes: dict[str, str] = field(default_factory=dict)  # prefix -> key
    mailbox_department: dict[str, str] = field(default_factory=dict)  # mailbox -> key
    rules: tuple[RuleEntry, ...] = ()
    default: str = ""  # department keys from the settings (routing.default / routing.unknown)
    unknown: str = ""
    own_addresses: frozenset[str] = frozenset()
    mail_domain: str = "mailbot.local"
    address_department: dict[str, str] = field(default_factory=dict)  # mailbox address -> key
    address_mailbox: dict[str, str] = field(default_factory=dict)  # mailbox address -> mailbox name
    name_prefixes: tuple[str, ...] = ("市",)  # the city/region prefixes people leave out of unit names

    @classmethod
    def from_settings(cls, settings) -> "Directory":
        units = tuple(UnitEntry(u.name, u.category, u.parent, tuple(u.aliases),
                                frozenset(a.strip().lower() for a in u.addresses),
                                tuple(d.strip().lower().lstrip("@") for d in u.domains))
                      for u in settings.units)
        return cls(
            units=units,
            departments={d.key: d.name for d in settings.departments},
            prefixes={d.prefix: d.key for d in settings.departments},
            mailbox_department={d.mailbox: d.key for d in settings.departments if d.mailbox},
            rules=tuple(RuleEntry(r.name, r.department, tuple(r.categories), tuple(r.keywords))
                        for r in settings.routing.rules),
            default=settings.routing.default or "",
            unknown=settings.routing.unknown or "",
            own_addresses=frozenset(b.email.lower() for b in settings.mailboxes),
            mail_domain=settings.mail_domain,
            address_department={b.email.lower(): d.key for d in settings.departments for b in settings.mailboxes
                                if d.mailbox == b.name},
            address_mailbox={b.email.lower(): b.name for b in settings.mailboxes},
            name_prefixes=settings.office.prefixes,
        )


# --- subjects ----------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|wg|回复|答复|转发|轉寄|回覆|轉發|Antw)\s*[:：]\s*)+", re.I)
_TAG = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,4})-(\d{4})-(\d{3,6})(?![0-9])")


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), for matching, never for display."""
    return unicodedata.normalize("NFKC", text or "")


def find_tracking(subject: str, directory: Directory) -> str | None:
    """The tracking number in a subject, e.g. KP-2026-0042, however the client mangled it
    (full-width brackets, Outlook's link, QQ's stacked 回复：RE: prefixes)."""
    for m in _TAG.finditer(normalise(subject)):
        if m.group(1) in directory.prefixes:
            return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return None


def clean_title(subject: str) -> str:
    """The 稿件's title: the subject without reply/forward prefixes or our tracking tag."""
    text = subject or ""
    for _ in range(5):  # prefixes and tags can alternate: 回复：[KP-2026-0001] 转发：…
        before = text
        text = _PREFIX.sub("", text)
        text = re.sub(r"^\s*[\[［【]\s*[A-Z]{1,4}[-－]\d{4}[-－]\d{3,6}\s*[\]］】]\s*", "", text)
        if text == before:
            break
    return text.strip() or "（无主题）"


# --- units -------------------------------------------------------------------------


def _variants(unit: UnitEntry, prefixes: tuple[str, ...] = ("市",)) -> set[str]:
    """The names people write for a unit: its name, aliases, and the usual short forms."""
    out = set()
    for label in (unit.name, *unit.aliases):
        label = normalise(label).replace(" ", "")
        out.add(label)
        short = label.replace("科学技术协会", "科协")
        out.add(short)
        for prefix in prefixes:
            if short.startswith(prefix) and len(short) > len(prefix) + 3:
                out.add(short[len(prefix):])
        out.add(re.sub(r"^(.{2,4}?)[县区市](科协|农技协|老科协)$", r"\1\2", short))
    return {v for v in out if len(v) >= 3}


def _name_index(directory: Directory) -> list[tuple[str, UnitEntry]]:
    pairs = [(v, u) for u in directory.units for v in _variants(u, directory.name_prefixes)]
    return sorted(pairs, key=lambda p: -len(p[0]))  # longest first: 沂水县科协 before 水县科协


def find_unit_by_name(text: str, directory: Directory) -> UnitEntry | None:
    hay = normalise(text).replace(" ", "")
    for variant, unit in _name_index(directory):
        if variant in hay:
            return unit
    return None


def roster_unit(address: str, directory: Directory) -> UnitEntry | None:
    """The unit an address belongs to by the roster alone (its addresses or domains), or None."""
    address = (address or "").strip().lower()
    domain = address.rsplit("@", 1)[-1] if "@" in address else ""
    for unit in directory.units:
        if address and address in unit.addresses:
            return unit
    for unit in directory.units:
        if domain and any(domain == d or domain.endswith("." + d) for d in unit.domains):
            return unit
    return None


@dataclass(frozen=True)
class _Found:
    unit: UnitEntry | None
    evidence: str
    claimed: str | None = None


def find_unit(sender: str, subject: str, signature: str | None, directory: Directory) -> _Found:
    """Unit by address, then domain, then the unit named in the subject or signature."""
    address = (sender or "").strip().lower()
    for unit in directory.units:
        if address and address in unit.addresses:
            return _Found(unit, f"发件地址 {address} 登记在 {unit.name} 名下")
    domain = address.rsplit("@", 1)[-1] if "@" in address else ""
    for unit in directory.units:
        for d in unit.domains:
            if domain and (domain == d or domain.endswith("." + d)):
                return _Found(unit, f"发件域名 {domain} 属于 {unit.name}")
    tags = re.findall(r"【([^【】]{2,30})】", normalise(subject).replace("[", "【").replace("]", "】"))
    for tag in tags:
        unit = find_unit_by_name(tag, directory)
        if unit:
            return _Found(unit, f"主题标注【{tag}】对应 {unit.name}")
    unit = find_unit_by_name(subject, directory)
    if unit:
        return _Found(unit, f"主题中写有单位名称，对应 {unit.name}")
    if signature:
        unit = find_unit_by_name(signature, directory)
        if unit:
            return _Found(unit, f"正文署名“{signature}”对应 {unit.name}")
    claimed = next((t for t in tags if re.search(r"(科协|学会|协会|研究会|基地|农技协|大学|学院)$", t)), None)
    return _Found(None, "发件地址、域名、主题和署名都没有对应名册中的单位", claimed or signature)


# --- departments -------------------------------------------------------------------


def pick_department(unit: UnitEntry | None, text: str, mailbox: str, directory: Directory,
                    addressed: tuple[str, ...] = ()) -> tuple[str, str]:
    """(department key, reason) by the configured rules. Where rules disagree, the
    departments whose mailboxes the message was addressed to (To, then Cc) decide, so
    every copy of one message lands in the same place; then the arrival mailbox."""
    if unit is None:
        key = directory.unknown
        return key, f"未知单位，按规定由{directory.departments.get(key, key)}初审"
    hay = normalise(text)
    hits = []
    for rule in directory.rules:
        if rule.categories and unit.category not in rule.categories:
            continue
        if rule.keywords and not any(normalise(k) in hay for k in rule.keywords):
            continue
        hits.append(rule)
    if not hits:
        key = directory.default
        return key, f"{unit.name}（{unit.category}）不属于其他科室的范围，由{directory.departments.get(key, key)}初审"
    keys = list(dict.fromkeys(r.department for r in hits))
    chosen = hits[0]
    note = ""
    if len(keys) > 1:
        names = "、".join(directory.departments.get(k, k) for k in keys)
        prefer = [(directory.address_department.get(a), directory.address_mailbox.get(a)) for a in addressed]
        prefer.append((directory.mailbox_department.get(mailbox), mailbox))
        decider = next(((k, box) for k, box in prefer if k in keys), None)
        if decider is None:
            note = f"（规则有分歧：{names}；收件邮箱不属于其中任何科室，按第一条规则）"
        else:
            chosen = next(r for r in hits if r.department == decider[0])
            note = f"（规则有分歧：{names}；按收件邮箱 {decider[1]} 决定）"
    why = f"规则“{chosen.name}”"
    if chosen.categories:
        why += f"：单位类别 {unit.category}"
    if chosen.keywords:
        words = [k for k in chosen.keywords if normalise(k) in hay]
        why += f"，内容含“{'、'.join(words)}”"
    return chosen.department, f"{why} → {directory.departments.get(chosen.department, chosen.department)}{note}"


# --- the whole classification ------------------------------------------------------


def _is_ours(ref: str, directory: Directory) -> bool:
    return ref.startswith("<mailbot.") and ref.rstrip(">").endswith("@" + directory.mail_domain)


def route(mail: Mail | dict, directory: Directory, mailbox: str = "") -> Route:
    """Classify one message (a `Mail` or its `to_json()` summary)."""
    m = mail.to_json() if isinstance(mail, Mail) else mail
    sender = m["from"]["address"]
    subject = m["subject"]

    def done(kind, reason, found=None, dept=None, tracking=None, dept_reason=""):
        unit = found.unit if found else None
        full = reason if not dept_reason else f"{reason}；{dept_reason}"
        return Route(kind, unit.name if unit else None, unit is not None, dept,
                     directory.departments.get(dept) if dept else None, full, tracking,
                     unit.category if unit else None, found.claimed if found else None)

    if m["bounce"]:
        return done("bounce", f"退信（{m.get('bounce_reason') or '投递失败通知'}）")
    if m["auto_reply"]:
        return done("auto_reply", f"自动回复（{m.get('auto_reply_reason') or '自动回复标记'}），不作处理")
    if m.get("mailing_list"):
        return done("other", "邮件列表的群发邮件（List-Id 等标记），不作处理")
    tracking = find_tracking(subject, directory)
    if sender.lower() in directory.own_addresses:
        if tracking and quotes.says_published(quotes.new_text(m["text"], m.get("html"))):
            return done("reply", f"主题中的编号 {tracking}：发布确认（已发布）", tracking=tracking)
        return done("other", f"发件人 {sender} 是本机器人使用的邮箱，不作处理")
    refs = [r for r in [m.get("in_reply_to") or "", *m.get("references", [])] if r]
    threaded = any(_is_ours(r, directory) for r in refs)
    found = find_unit(sender, subject, m.get("unit_signature"), directory)
    has_files = bool(m["attachments"] or m["large_attachment_links"])
    if tracking or threaded:
        evidence = f"主题中的编号 {tracking}" if tracking else "回复的是本机器人发出的邮件"
        # a signature picture (inline, with a Content-ID) does not make "收到，谢谢" a new revision
        real_files = [a for a in m["attachments"] if not (a["disposition"] == "inline" and a.get("content_id"))]
        if review.find_tokens(mail if isinstance(mail, Mail) else mail_from_json(m)):
            # a review token: a reviewer's answer; its files belong to the decision, never a revision
            return done("reply", f"{evidence}，带审核编号：审核回复", found, tracking=tracking)
        if real_files or m["large_attachment_links"]:
            # who may make a revision is decided against the 稿件's unit and first sender (filing)
            return done("resubmission", f"{evidence}，并附有文件：修改稿", found, tracking=tracking)
        new = quotes.new_text(m["text"], m.get("html"))
        intent = quotes.reply_intent(new)
        if intent == "revision" and quotes.read_command(new, directory.departments.values()).decision not in (
                "approve", "return", "reroute"):
            return done("resubmission", f"{evidence}，正文即修改稿（没有附件）", found, tracking=tracking)
        what = {"ack": "（确认收到）", "empty": "（没有新内容）"}.get(intent, "")
        return done("reply", f"{evidence}：对已有稿件的回复{what}", found, tracking=tracking)
    if not has_files and not m["text"].strip():
        return done("other", "没有正文也没有附件", found)
    names = " ".join([a["filename"] for a in m["attachments"]] + [x["name"] for x in m["large_attachment_links"]])
    addressed = tuple(a["address"].lower() for a in [*m.get("to", []), *m.get("cc", [])])
    dept, why = pick_department(found.unit, f"{subject}\n{names}\n{m['text'][:3000]}", mailbox, directory,
                                addressed)
    return done("submission", f"新稿件；{found.evidence}", found, dept, dept_reason=why)


_CAMPAIGN_MAIL = re.compile(r"^<mailbot\.(?:form|formreply)\.([a-z0-9_-]+)\.")  # reminders and form replies


def find_campaign_scan(mail: Mail | dict, directory: Directory) -> str | None:
    """The campaign key, when the message answers one of its mails (a reminder or a form
    reply) with a scan or photo attached (PDF or image; not an inline signature picture)."""
    summary = mail if isinstance(mail, dict) else mail.to_json()
    scans = [a for a in summary["attachments"] if (a["content_type"] == "application/pdf" or a["content_type"]
             .startswith("image/")) and not (a["disposition"] == "inline" and a.get("content_id"))]
    if not scans:
        return None
    domain = "@" + directory.mail_domain + ">"
    for ref in [summary.get("in_reply_to") or "", *reversed(summary.get("references") or [])]:
        found = _CAMPAIGN_MAIL.match(ref)
        if found and ref.endswith(domain):
            return found.group(1)
    return None


def classify(mail: Mail | dict, directory: Directory, mailbox: str = "", forms: list[dict] | tuple = (),
             campaign_scan: str | None = None, routed: Route | None = None) -> Route:
    """The one classification, for the pipeline and `mailbot parse` alike: `route()`, then
    the forms the caller read among the attachments (`forms`: a campaign's form makes the
    message a form, not a 稿件) and a scan answering a campaign's mail (`campaign_scan`,
    from `find_campaign_scan`: the stamped copy of a form). `routed`: what `route()` gave
    for this very message and directory, when the caller already asked it."""
    found = routed if routed is not None else route(mail, directory, mailbox)
    if forms and found.kind not in ("auto_reply", "bounce", "other"):
        return replace(found, kind="form", reason=f"附件是报表《{forms[0]['result']['form_type']}》；{found.reason}",
                       forms=tuple(forms))
    if campaign_scan and found.kind in ("reply", "resubmission"):
        return replace(found, kind="form", reason=f"回复报表邮件，附有盖章件或扫描件；{found.reason}",
                       campaign=campaign_scan)
    return found
