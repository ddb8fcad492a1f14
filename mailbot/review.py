"""Review by e-mail, the pure part: review tokens, which review a reply answers, whether
its sender may decide, and what a decision does to the 稿件 (the transition).

A decision needs both a token (in the subject tag, our Message-ID or a +sub-address) and
a From address on that reviewer's list, as Discourse requires both; DMARC/DKIM failures
reported by the configured authserv-id hold the decision for the operator. No I/O here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from mailbot.models import Mail

TOKEN_BITS = 128
_TOKEN = r"[0-9a-f]{32}"
_SUBJECT_TOKEN = re.compile(rf"[A-Z]{{1,4}}-\d{{4}}-\d{{3,6}}\s*/\s*({_TOKEN})", re.I)
_ID_TOKEN = re.compile(rf"<mailbot\.(?:review|reminder)\.[A-Z]{{1,4}}-\d{{4}}-\d{{3,6}}\.({_TOKEN})@", re.I)
_PLUS_TOKEN = re.compile(rf"\+({_TOKEN})@", re.I)
_DIGEST_ID = re.compile(r"<mailbot\.digest\.", re.I)


def make_token(secret: bytes, tracking: str, revision: int, stage: int, reviewer: str, nonce: str) -> str:
    """An unguessable token for one (稿件, revision, stage, reviewer): HMAC-SHA256, 128 bits."""
    msg = f"{tracking}|{revision}|{stage}|{reviewer}|{nonce}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[: TOKEN_BITS // 4]


def find_tokens(mail: Mail) -> list[str]:
    """Tokens a reply carries, best evidence first: subject tag, our Message-ID in
    In-Reply-To/References (survives an edited subject), then a +sub-address."""
    found = [m.lower() for m in _SUBJECT_TOKEN.findall(_nfkc(mail.subject))]
    refs = [mail.in_reply_to or "", *mail.references]
    found += [m.lower() for ref in refs for m in _ID_TOKEN.findall(ref)]
    addresses = [a.address for a in (*mail.to, *mail.cc)]
    addresses += [v for k, v in mail.headers if k.lower() in ("delivered-to", "x-original-to")]
    found += [m.lower() for a in addresses for m in _PLUS_TOKEN.findall(a)]
    return list(dict.fromkeys(found))


def answers_digest(mail: Mail) -> bool:
    return any(_DIGEST_ID.search(r) for r in (mail.in_reply_to or "", *mail.references))


def _nfkc(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", text or "")


def auth_verdict(headers: list[tuple[str, str]], authserv_id: str | None) -> bool | None:
    """False when the trusted server reports a DMARC or DKIM failure, True on a pass,
    None when it said nothing (headers from any other authserv-id are ignored: a sender
    can write its own Authentication-Results)."""
    if not authserv_id:
        return None
    verdict = None
    for name, value in headers:
        if name.lower() != "authentication-results":
            continue
        serv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if serv != authserv_id.lower():
            continue
        low = value.lower()
        if re.search(r"\bdmarc=fail\b", low) or re.search(r"\bdkim=fail\b", low):
            return False
        if re.search(r"\bdmarc=pass\b", low) or re.search(r"\bdkim=pass\b", low):
            verdict = True
    return verdict


@dataclass(frozen=True)
class TaskView:
    """What judging a reply needs to know of one review task."""

    token: str
    reviewer: str
    addresses: frozenset[str]
    status: str
    expires_at: datetime


@dataclass(frozen=True)
class Verdict:
    action: str  # decide | refuse | hold | ask | ack | ignore
    code: str  # why, for the template and the audit trail
    detail: str = ""


_ADDRESS_IN_NAME = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def sender_problem(mail: Mail) -> str | None:
    """Why a message does not come from exactly one person, or None. Such a message never
    acts for a reviewer or a unit (Discourse and Mailman trust one From, never a list):
    several From addresses; a Sender that is not the From; a From whose display name holds
    another address ("zhang@ly.gov.cn" <x@evil.example>)."""
    own = {a.address.lower() for a in mail.from_all if a.address}
    if len(own) > 1 or len(mail.from_all) > 1:
        return "several-from"
    address = (next(iter(own)) if own else mail.from_.address).lower()
    if mail.sender is not None and mail.sender.address and mail.sender.address.lower() != address:
        return "sender-differs"
    if any(found.lower() != address for found in _ADDRESS_IN_NAME.findall(_nfkc(mail.from_.name))):
        return "address-in-name"
    return None


def judge(sender: str, task: TaskView | None, decision: str | None, auth: bool | None, now: datetime,
          sender_is_reviewer: bool, sender_issue: str | None = None) -> Verdict:
    """May this reply decide? The order matters: identity before content. `sender_issue`
    is `sender_problem(mail)`: a message not from exactly one person is held."""
    sender = sender.lower()
    if task is None:
        if sender_is_reviewer or decision in ("approve", "return", "reroute"):
            return Verdict("refuse", "no-token", "no valid review token in the reply")
        return Verdict("ignore", "not-a-review-reply")
    if task.status != "open":
        return Verdict("refuse", "already-decided", f"task is {task.status}")
    if now >= task.expires_at:
        return Verdict("refuse", "expired", "token expired")
    if sender_issue is not None:
        return Verdict("hold", sender_issue, "the message does not come from exactly one sender")
    if sender not in task.addresses:
        return Verdict("hold", "unknown-address", f"{sender} is not on {task.reviewer}'s list")
    if auth is False:
        return Verdict("hold", "auth-failed", "DMARC/DKIM failure reported by the trusted server")
    if decision is None:
        return Verdict("ack", "acknowledgement")
    if decision == "ask":
        return Verdict("ask", "unclear")
    return Verdict("decide", decision)


@dataclass(frozen=True)
class Outcome:
    kind: str  # wait | advance | approved | returned | rerouted
    next_stage: int | None = None


def transition(decision: str, stage: int, n_stages: int, mode: str, approvals: int, reviewers: int) -> Outcome:
    """What one accepted decision does. `approvals` counts this stage's approvals including
    this one; in mode 'all' a stage passes when every reviewer has approved."""
    if decision == "return":
        return Outcome("returned")
    if decision == "reroute":
        return Outcome("rerouted", 0)
    if mode == "all" and approvals < reviewers:
        return Outcome("wait")
    if stage + 1 < n_stages:
        return Outcome("advance", stage + 1)
    return Outcome("approved")


def chase_action(days_waiting: int, days_since_chase: int | None, escalated: bool, chase_after: int,
                 escalate_after: int) -> str | None:
    """A waiting review is chased once after `chase_after` working days, then escalated
    once `escalate_after` working days after the chase."""
    if days_since_chase is None:
        return "chase" if days_waiting >= chase_after else None
    if not escalated and days_since_chase >= escalate_after:
        return "escalate"
    return None


SENSITIVE = ("绝密", "机密", "秘密", "内部", "涉密", "不宜公开")


def attention_flags(texts: list[str]) -> list[str]:
    """Words worth a reviewer's attention (the notice insists on 严控涉密上网)."""
    hay = "\n".join(texts)
    return [f"含“{w}”字样" for w in SENSITIVE if w in hay]
