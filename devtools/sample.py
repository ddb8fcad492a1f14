"""A plausible history of activity written straight into the database: the digest's
benchmark, the operator CLI's tests and the demo's digest preview use it.

Bulk inserts through SQLAlchemy Core (100,000 稿件 take a few seconds); everything is
derived from a seeded random generator, so the same arguments give the same database.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, text

from mailbot.store import FormReturn, FormRow, InboundMessage, OutboxMessage, ReviewTask, Submission

TITLES = ["科普日活动信息", "科技工作者日座谈会", "院士专家进基层", "青少年科技创新大赛", "科普大篷车进校园",
          "农技培训会", "学术年会", "防灾减灾科普宣传", "科普讲解大赛", "科技志愿服务"]


def seed(engine, settings, now: datetime, submissions: int = 200, weeks: int = 12, open_share: float = 0.08,
         failures: int = 3, forms: bool = True, rnd: int = 7) -> dict:
    """Write `submissions` 稿件 spread over `weeks` weeks before `now`, each with its review
    tasks; a few failed outbox rows; and form returns for every campaign. Returns counts."""
    rng = random.Random(rnd)
    depts = [d for d in settings.departments]
    units = [u.name for u in settings.units] or ["（未识别）"]
    reviewers = [r.key for r in settings.reviewers] or ["reviewer"]
    span = timedelta(weeks=weeks).total_seconds()
    inbound, subs, tasks = [], [], []
    counters: dict[str, int] = {}
    for i in range(submissions):
        at = now - timedelta(seconds=rng.random() * span)
        dept = depts[i % len(depts)]
        counters[dept.prefix] = counters.get(dept.prefix, 0) + 1
        iid = i + 1
        inbound.append(dict(id=iid, key=f"<seed.{iid}@sample>", message_id=f"<seed.{iid}@sample>",
                            fingerprint=f"{iid:064x}", sha256=f"{iid:064x}", size=1000, raw_path=f"raw/seed/{iid}.eml", first_mailbox="seed",
                            status="parsed", kind="submission", received_at=at, processed_at=at, attempts=1,
                            auto_reply=False, bounce=False, attachment_count=1))
        status, decision, decided = _fate(rng, at, now, open_share)
        subs.append(dict(id=iid, tracking=f"{dept.prefix}-{at.year}-{counters[dept.prefix]:05d}-{iid}",
                         department=dept.key, unit=rng.choice(units), unit_known=True,
                         title=f"{rng.choice(TITLES)}（{iid}）", revision=1, status=status, sender="unit@sample.test",
                         mailbox="seed", route_reason="样例数据", inbound_id=iid, folder=f"seed/{iid}",
                         oversized=False, stage=0, created_at=at, updated_at=decided or at))
        tasks.append(dict(submission_id=iid, revision=1, department=dept.key, stage=0, stage_name="初审",
                          reviewer=rng.choice(reviewers), token=f"seed{iid:012d}",
                          status="open" if decision is None else "decided", decision=decision,
                          reason="请补充活动照片" if decision == "return" else None,
                          decided_by="reviewer@sample.test" if decision else None, decided_at=decided,
                          expires_at=at + timedelta(days=30), created_at=at + timedelta(minutes=1)))
    with engine.begin() as conn:
        for table, rows in ((InboundMessage, inbound), (Submission, subs), (ReviewTask, tasks)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start:start + 5000])
        if failures:
            conn.execute(insert(OutboxMessage), [dict(
                kind="receipt", mailbox="seed", to_address=f"nobody{i}@sample.test", subject="回执",
                message_id=f"<seed.fail.{i}@sample>", raw=b"", status="failed", attempts=5,
                next_attempt_at=now, give_up_at=now, last_error="550 mailbox unavailable",
                created_at=now - timedelta(hours=1 + i)) for i in range(failures)])
        returns = _forms(conn, settings, now, rng) if forms and inbound else 0
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("inbound_message", "submission"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
    return {"submissions": submissions, "form_returns": returns}


def _fate(rng, at: datetime, now: datetime, open_share: float):
    """(status, decision, decided_at): most are decided within days, some still wait."""
    if rng.random() < open_share:
        return "reviewing", None, None
    decided = at + timedelta(hours=rng.uniform(2, 96))
    if decided >= now:
        return "reviewing", None, None
    if rng.random() < 0.8:
        return "approved", "approve", decided
    return "returned", "return", decided


def _forms(conn, settings, now: datetime, rng) -> int:
    """One valid return for about two thirds of each campaign's units, rows keyed like the template."""
    from mailbot.campaigns import deadlines

    count = 0
    for campaign in settings.campaigns:
        for audience in campaign.audiences:
            for name in deadlines.audience_units(audience, settings.units):
                if rng.random() > 0.66:
                    continue
                unit = next(u for u in settings.units if u.name == name)
                count += 1
                at = now - timedelta(days=rng.uniform(0, 13))
                result = conn.execute(insert(FormReturn).returning(FormReturn.id), [dict(
                    campaign=campaign.key, unit=name, sender=(unit.addresses or ["unit@sample.test"])[0],
                    version=1, inbound_id=1, filename="关注情况统计表.xlsx", format="xlsx", valid=True,
                    stamped=False, on_time=True, result_json="{}", received_at=at)])
                rid = result.scalar_one()
                conn.execute(insert(FormRow), [dict(return_id=rid, row_index=1, source="Sheet1!3", row_unit=name,
                                                    parent=unit.parent or "市直单位",
                                                    data_json=json.dumps({"序号": 1, "单位名称": name,
                                                                          "关注人数": rng.randint(50, 3000)},
                                                                         ensure_ascii=False))])
    return count


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
