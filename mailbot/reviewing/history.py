"""The whole story of one 稿件 for `mailbot show`: its record, review tasks, audit events
and the mail it caused, read from the database in time order."""

from __future__ import annotations

from sqlmodel import Session, or_, select

from mailbot.store import Event, OutboxMessage, ReviewTask, Submission

STATUS = {"received": "已登记", "reviewing": "审核中", "approved": "已通过", "returned": "已退回"}
EVENTS = {"filed": "登记", "resubmitted": "收到修改稿", "review-started": "送审", "decision": "审核决定",
          "review-refuse": "拒绝（身份未确认）", "review-hold": "暂缓（待管理员确认）", "review-ask": "请审核人明确意见",
          "review-ack": "审核人回复（非决定）", "review-ignore": "回复（非审核）", "outbox-bounced": "退信",
          "outbox-failed": "发送失败", "outbox-cap": "超过每日发送上限（未发出）",
          "outcome-filed": "结果：已登记", "outcome-answered": "结果：已答复", "outcome-applied": "结果：已执行",
          "outcome-ignored": "结果：无需处理", "outcome-needs-person": "结果：需要人工处理",
          "alert": "已提醒管理员", "revision-hold": "修改稿待确认"}


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def submission_history(engine, settings, tracking: str) -> dict | None:
    with Session(engine) as s:
        sub = s.exec(select(Submission).where(Submission.tracking == tracking)).first()
        if sub is None:
            return None
        tasks = s.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id).order_by(ReviewTask.id)).all()
        events = s.exec(select(Event).where(or_(Event.submission_id == sub.id, Event.inbound_id == sub.inbound_id))
                        .order_by(Event.at, Event.id)).all()
        mail = s.exec(select(OutboxMessage).where(OutboxMessage.submission_id == sub.id)
                      .order_by(OutboxMessage.id)).all()
        dept = next((d.name for d in settings.departments if d.key == sub.department), sub.department)
        return {
            "submission": {"tracking": sub.tracking, "title": sub.title, "unit": sub.unit, "unit_known": sub.unit_known,
                           "department": sub.department, "department_name": dept, "status": sub.status,
                           "revision": sub.revision, "stage": sub.stage, "sender": sub.sender,
                           "route_reason": sub.route_reason, "folder": sub.folder, "created_at": _iso(sub.created_at)},
            "reviews": [{"revision": t.revision, "stage": t.stage_name, "reviewer": t.reviewer, "status": t.status,
                         "decision": t.decision, "reason": t.reason, "decided_by": t.decided_by,
                         "decided_at": _iso(t.decided_at)} for t in tasks],
            "history": [{"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail} for e in events],
            "mail": [{"created_at": _iso(m.created_at), "kind": m.kind, "to": m.to_address, "status": m.status,
                      "error": m.last_error} for m in mail],
        }
