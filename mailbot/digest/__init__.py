"""The weekly digest, the pure part: which period a moment belongs to, and a snapshot of
numbers → the digest's content, its chart (PNG) and its Excel attachment (bytes).

A digest covers the seven days before its send day: sent Monday 08:00, it reports
Monday 00:00 to Sunday 24:00 of the week before, in the office's time zone. A period is
named by the ISO week it starts in (2026-W47), which is also its claim key.
"""

from __future__ import annotations

import io
import logging
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from mailbot.campaigns import workdays
from mailbot.config import WEEKDAYS
from mailbot.models import aware

LATE_GRACE = timedelta(minutes=10)  # a digest sent later than this after its minute is marked late
DECISIONS = {"approve": "通过", "return": "退回", "reroute": "转科室"}
STATUS = {"received": "已登记", "reviewing": "审核中", "approved": "已通过", "returned": "已退回"}
TOP_UNITS = 15


@dataclass(frozen=True)
class Period:
    key: str  # 2026-W47
    starts_at: datetime  # UTC
    ends_at: datetime
    scheduled_at: datetime
    first_day: date  # local
    last_day: date

    @property
    def label(self) -> str:
        a, b = self.first_day, self.last_day
        tail = f"{b.month}月{b.day}日" if a.year == b.year else f"{b.year}年{b.month}月{b.day}日"
        return f"{a.year}年{a.month}月{a.day}日—{tail}"


def _period_ending(send_day: date, cfg, tz) -> Period:
    hour, minute = (int(x) for x in cfg.time.split(":"))
    ends_local = datetime.combine(send_day, time(0, 0), tzinfo=tz)
    starts_local = datetime.combine(send_day - timedelta(days=7), time(0, 0), tzinfo=tz)
    iso = starts_local.date().isocalendar()
    return Period(key=f"{iso.year}-W{iso.week:02d}", starts_at=starts_local.astimezone(timezone.utc),
                  ends_at=ends_local.astimezone(timezone.utc),
                  scheduled_at=datetime.combine(send_day, time(hour, minute), tzinfo=tz).astimezone(timezone.utc),
                  first_day=starts_local.date(), last_day=send_day - timedelta(days=1))


def period_for(now: datetime, cfg, tz) -> Period:
    """The latest period whose send minute is at or before `now`."""
    local = now.astimezone(tz)
    back = (local.weekday() - WEEKDAYS.index(cfg.day)) % 7
    period = _period_ending(local.date() - timedelta(days=back), cfg, tz)
    if period.scheduled_at > now:
        period = _period_ending(local.date() - timedelta(days=back + 7), cfg, tz)
    return period


def current_period(now: datetime, cfg, tz) -> Period:
    """The period that holds `now`: the week so far, whose digest is sent when it ends."""
    local = now.astimezone(tz)
    ahead = (WEEKDAYS.index(cfg.day) - local.weekday()) % 7 or 7
    return _period_ending(local.date() + timedelta(days=ahead), cfg, tz)


def next_run(now: datetime, cfg, tz) -> datetime:
    """The next send minute after `now` (UTC)."""
    return period_for(now, cfg, tz).scheduled_at + timedelta(days=7)


def period_by_key(key: str, cfg, tz) -> Period:
    """The period named by an ISO week (2026-W47): it starts on the digest's weekday of that week."""
    year, _, week = key.upper().partition("-W")
    start = date.fromisocalendar(int(year), int(week), WEEKDAYS.index(cfg.day) + 1)
    return _period_ending(start + timedelta(days=7), cfg, tz)


def is_late(period: Period, now: datetime) -> bool:
    return now - period.scheduled_at > LATE_GRACE


# --- content ----------------------------------------------------------------------------


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} 分钟"
    if hours < 48:
        return f"{hours:.1f} 小时".replace(".0 ", " ")
    return f"{hours / 24:.1f} 天".replace(".0 ", " ")


def _delta(now: int, before: int) -> str:
    diff = now - before
    return "持平" if diff == 0 else (f"+{diff}" if diff > 0 else str(diff))


def _local(value: datetime | None, tz) -> datetime | None:
    return aware(value).astimezone(tz) if value is not None else None


def build(snap, period: Period, settings, now: datetime, late: bool = False) -> dict:
    """Everything the templates show, as plain values (numbers, strings, lists)."""
    tz = settings.tz
    names = {d.key: d.name for d in settings.departments}
    scope = names.get(snap.department, snap.department) if snap.department else None
    depts = [d.key for d in settings.departments if not snap.department or d.key == snap.department]
    depts += sorted(k for k in {*snap.new_by_dept, *snap.prev_by_dept, *snap.weekly} if k not in depts)
    hours = [(_local(i["decided_at"], tz) - _local(i["created_at"], tz)).total_seconds() / 3600
             for i in snap.decision_items]
    new_total, prev_total = sum(snap.new_by_dept.values()), sum(snap.prev_by_dept.values())
    waiting = [dict(w, department=names.get(w["department"], w["department"]),
                    days=max(0, (now - _local(w["since"], tz)).days), since=_local(w["since"], tz).strftime("%m-%d %H:%M"))
               for w in snap.waiting]
    cards = [dict(label="本周新稿件", value=new_total, note=f"上周 {prev_total}，{_delta(new_total, prev_total)}"),
             dict(label="通过", value=snap.decisions.get("approve", 0), note="审核决定"),
             dict(label="退回", value=snap.decisions.get("return", 0),
                  note=f"待单位修改 {snap.returned_open}" if snap.returned_open else "审核决定"),
             dict(label="等待审核", value=snap.waiting_total,
                  note=f"最久 {waiting[0]['days']} 天" if waiting else "无积压")]
    if snap.published:
        cards.insert(3, dict(label="已发布", value=snap.published, note="公众号"))
    if snap.department is None:
        cards.append(dict(label="发送失败", value=snap.failures_total, note="本周邮件"))
        if snap.needs_person_total:
            cards.append(dict(label="待人工处理", value=snap.needs_person_total, note="来信"))
    return dict(
        title=f"{settings.organisation}{scope or ''}稿件与报表周报", scope=scope, late=late,
        period=dict(key=period.key, label=period.label), organisation=settings.organisation,
        contact=settings.contact().name if settings.contact() else None,
        generated_at=_local(now, tz).strftime("%Y-%m-%d %H:%M"), cards=cards,
        departments=[dict(name=names.get(k, k), new=snap.new_by_dept.get(k, 0), prev=snap.prev_by_dept.get(k, 0),
                          delta=_delta(snap.new_by_dept.get(k, 0), snap.prev_by_dept.get(k, 0))) for k in depts],
        new_total=new_total, prev_total=prev_total,
        units=[dict(unit=u, department=names.get(d, d), count=n) for u, d, n in snap.new_by_unit[:TOP_UNITS]],
        units_more=max(0, len(snap.new_by_unit) - TOP_UNITS), units_total=len({u for u, _d, _n in snap.new_by_unit}),
        decisions=[dict(name=DECISIONS.get(k, k), count=v) for k, v in sorted(snap.decisions.items())],
        decided=len(hours), median=_duration(statistics.median(hours)) if hours else None,
        waiting=waiting, waiting_total=snap.waiting_total, returned_open=snap.returned_open,
        campaigns=[_campaign(c, names) for c in snap.campaigns],
        failures=[dict(f, created_at=_local(f["created_at"], tz).strftime("%m-%d %H:%M")) for f in snap.failures],
        failures_total=snap.failures_total, show_failures=snap.department is None,
        calendar_gaps=workdays.calendar_gaps(settings, now) if snap.department is None else [],
        weeks=[_local(w, tz).strftime("%m/%d") for w in snap.week_starts],
        weekly=[dict(name=names.get(k, k), counts=snap.weekly.get(k, [0] * len(snap.week_starts))) for k in depts],
        dept_lines=text_table([["科室", "本周", "上周", "变化"],
                               *[[names.get(k, k), snap.new_by_dept.get(k, 0), snap.prev_by_dept.get(k, 0),
                                  _delta(snap.new_by_dept.get(k, 0), snap.prev_by_dept.get(k, 0))] for k in depts],
                               ["合计", new_total, prev_total, ""]], [12, 6, 6, 6]),
        unit_lines=text_table([[u, names.get(d, d), n] for u, d, n in snap.new_by_unit[:TOP_UNITS]], [30, 10, 4]),
    )


def _campaign(c: dict, names: dict) -> dict:
    audiences = []
    for a in c["audiences"]:
        left = a["days_left"]
        when = f"还有 {left} 天" if left > 0 else ("今天截止" if left == 0 else f"已截止 {-left} 天")
        audiences.append(dict(a, deadline=f"{a['deadline'].month}月{a['deadline'].day}日", when=when,
                              missing_names="、".join(a["missing"][:10]) + (f" 等 {len(a['missing'])} 个"
                                                                           if len(a["missing"]) > 10 else "")))
    tallies = [dict(column=col, rows=[dict(r, delta=_delta(r["value"], r["previous"])) for r in rows],
                    total=sum(r["value"] for r in rows), previous=sum(r["previous"] for r in rows))
               for col, rows in c["tally"].items()]
    return dict(name=c["name"], key=c["key"], audiences=audiences, tallies=tallies,
                returns_this_period=c["returns_this_period"])


def text_table(rows: list[list], widths: list[int]) -> list[str]:
    """Rows padded for the plain-text part (CJK characters count double)."""
    def width(s: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)

    return ["  ".join(str(v) + " " * max(0, w - width(str(v))) for v, w in zip(row, widths)).rstrip() for row in rows]


# --- chart and workbook -----------------------------------------------------------------

CJK_FONTS = ["WenQuanYi Zen Hei", "Noto Sans CJK SC", "Source Han Sans SC", "SimHei", "Microsoft YaHei"]
COLOURS = ["#2f6fb3", "#e07b28", "#3a9a5b", "#b03a48", "#7a5cb0", "#8c8c8c"]


def chart_png(content: dict) -> bytes:
    """稿件 per department per week, stacked bars, as a PNG for the mail's inline image."""
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "weight normal" noise
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    available = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [f for f in CJK_FONTS if f in available]
    series = content["weekly"]
    labels = [s["name"] if cjk else f"D{i + 1}" for i, s in enumerate(series)]
    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=100)
    try:
        if cjk:
            plt.rcParams["font.family"] = [cjk[0], "DejaVu Sans"]
        bottom = [0] * len(content["weeks"])
        for i, s in enumerate(series):
            ax.bar(content["weeks"], s["counts"], bottom=bottom, label=labels[i], color=COLOURS[i % len(COLOURS)],
                   width=0.7)
            bottom = [b + c for b, c in zip(bottom, s["counts"])]
        for x, total in enumerate(bottom):
            if total:
                ax.text(x, total, str(total), ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, max([*bottom, 1]) * 1.18)
        ax.tick_params(axis="x", labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if ax.get_legend_handles_labels()[0]:  # an empty week has nothing to name
            ax.legend(fontsize=7, frameon=False, loc="upper left", ncol=max(1, len(series)))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def workbook(content: dict, snap, settings) -> bytes:
    """The details as an Excel attachment: one sheet per table in the mail, complete."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    tz, names = settings.tz, {d.key: d.name for d in settings.departments}
    book = Workbook()
    sheet = book.active
    sheet.title = "本周新稿件"
    sheet.append(["编号", "标题", "单位", "科室", "状态", "版本", "收到时间"])
    for i in snap.new_items:
        sheet.append([i["tracking"], i["title"], i["unit"] or "（未识别）", names.get(i["department"], i["department"]),
                      STATUS.get(i["status"], i["status"]), i["revision"], _naive(i["created_at"], tz)])
    sheet = book.create_sheet("各单位")
    sheet.append(["单位", "科室", "本周稿件"])
    for u, d, n in snap.new_by_unit:
        sheet.append([u, names.get(d, d), n])
    sheet = book.create_sheet("审核决定")
    sheet.append(["编号", "单位", "科室", "环节", "审核人", "决定", "理由", "送审时间", "决定时间"])
    for i in snap.decision_items:
        sheet.append([i["tracking"], i["unit"], names.get(i["department"], i["department"]), i["stage"], i["reviewer"],
                      DECISIONS.get(i["decision"], i["decision"]), i["reason"], _naive(i["created_at"], tz),
                      _naive(i["decided_at"], tz)])
    sheet = book.create_sheet("等待审核")
    sheet.append(["编号", "标题", "单位", "科室", "环节", "等谁", "送审时间", "已等天数"])
    for w in content["waiting"]:
        sheet.append([w["tracking"], w["title"], w["unit"], w["department"], w["stage"], w["reviewer"], w["since"],
                      w["days"]])
    sheet = book.create_sheet("报表进度")
    sheet.append(["报表", "范围", "截止", "应报", "已报", "合格", "未报", "未报单位"])
    for c in content["campaigns"]:
        for a in c["audiences"]:
            sheet.append([c["name"], a["name"], a["deadline"], a["units"], a["sent"], a["valid"], len(a["missing"]),
                          "、".join(a["missing"])])
    sheet = book.create_sheet("报表合计")
    sheet.append(["报表", "项目", "县区（上级）", "本周", "上周", "变化"])
    for c in content["campaigns"]:
        for t in c["tallies"]:
            for r in t["rows"]:
                sheet.append([c["name"], t["column"], r["county"], r["value"], r["previous"], r["delta"]])
    if content["show_failures"]:
        sheet = book.create_sheet("发送失败")
        sheet.append(["类别", "收件人", "主题", "状态", "原因", "时间"])
        for f in content["failures"]:
            sheet.append([f["kind"], f["to"], f["subject"], f["status"], f["error"], f["created_at"]])
    for ws in book.worksheets:
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _naive(value: datetime | None, tz) -> datetime | None:
    """Excel has no time zones: local time without tzinfo."""
    local = _local(value, tz)
    return local.replace(tzinfo=None) if local else None
