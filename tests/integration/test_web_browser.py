"""The console in a real browser (Playwright driving Debian's Chromium) against the real
database and mail servers: mail comes in over SMTP/IMAP, the robot files it, a person signs
in and acts, and what the action sends is read back from the recipients' mailboxes. Every
page is photographed at 1280 px and 390 px into test-output/screenshots/ (git-ignored).

One browser for the module; the console runs in uvicorn on a free loopback port."""

from __future__ import annotations

import io
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from conftest import ROOT, TEST_UNITS
from devtools.devservers import free_ports
from mailbot.runtime import daemon
from mailbot.store import Event, FormReturn, OutboxMessage, ReviewTask, Submission
from test_campaigns import CAMPAIGN, EXTRA_UNITS, send_form
from test_review import gaojian, latest, qq_reply, send
from webkit import PASSWORD, REVIEW, add_people

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
CHINA = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


class Console:
    """The console app served by uvicorn in a thread, and a signed-in browser page."""

    def __init__(self, rt, browser):
        import uvicorn

        from mailbot.web.app import create_app

        port = free_ports()[0]
        self.url = f"http://127.0.0.1:{port}"
        app = create_app(rt.settings, rt.engine, office=rt.office, now=lambda: rt.clock())
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        self.page = self.context.new_page()

    def sign_in(self, name: str) -> None:
        self.page.goto(self.url + "/")
        assert "/login" in self.page.url
        self.page.fill("input[name=name]", name)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.url + "/")

    def go(self, path: str, shot: str | None = None) -> None:
        response = self.page.goto(self.url + path)
        assert response.status == 200, (path, response.status)
        if shot:
            self.shoot(shot)

    def shoot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for width in (1280, 390):
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})

    def press(self, form_action: str, fill: dict | None = None) -> str:
        """Fill and submit the form posting to `form_action`; the flash sentence shown after."""
        form = self.page.locator(f"form[action='{form_action}']")
        for name, value in (fill or {}).items():
            field = form.locator(f"[name={name}]")
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        form.locator("button[type=submit]").click()
        self.page.wait_for_load_state()
        return self.page.locator(".flash").inner_text() if self.page.locator(".flash").count() else ""

    def close(self) -> None:
        self.context.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def robot(servers, make_settings):
    servers.dovecot.add_user("unit3", "secret")
    rt = daemon.Runtime.build(make_settings(servers, units=TEST_UNITS + EXTRA_UNITS, **REVIEW, **CAMPAIGN))
    add_people(rt.engine)
    yield rt
    rt.close()


@pytest.fixture
def console(robot, browser):
    c = Console(robot, browser)
    yield c
    c.close()


def mails(servers, user: str, needle: str) -> list:
    found = [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]
    return [m for m in found if needle in str(m["Subject"])]


def wait_for(check, timeout: float = 10.0):
    """Mail an action queues is sent right after the page answers: wait for it to arrive."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def aside(fn, *args):
    """Run fn in a thread of its own: Playwright's sync API keeps an event loop running in
    this one, and the robot's sending (asyncio.run) needs none."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(fn(*args)))
    worker.start()
    worker.join(120)
    assert result, f"{fn.__name__} failed (see the log above)"
    return result[0]


def deliver(servers, raw: bytes, sender: str, to: str) -> None:
    aside(send, servers, raw, sender, [to])


def run_robot(rt) -> None:
    aside(daemon.run_once, rt)


def the_submission(rt) -> Submission:
    with Session(rt.engine) as s:
        return s.exec(select(Submission)).one()


def test_a_submission_moved_resent_held_reply_confirmed_and_withdrawn(servers, robot, console):
    deliver(servers, gaojian(), "unit1@example.test", "skxkpb@example.test")
    run_robot(robot)
    sub = the_submission(robot)
    assert (sub.department, sub.status) == ("kepu", "reviewing")
    c = console
    c.page.goto(c.url + "/login")
    c.shoot("login")
    c.sign_in("op")
    c.shoot("home")
    assert sub.tracking in c.page.content()
    c.go("/subs?q=科普日", "list")
    c.page.click(f"text={sub.tracking}")
    c.shoot("submission")
    assert "科普日活动" in c.page.locator(".title").inner_text()

    # move to 学会部: the new department's first reviewer (李科长, reviewer2) gets the request
    flash = c.press(f"/subs/{sub.tracking}/move", {"department": "xuehui"})
    assert "已改派" in flash
    request = wait_for(lambda: mails(servers, "reviewer2", "请初审"))
    assert len(request) == 1 and sub.tracking in request[0]["Subject"]
    with Session(robot.engine) as s:
        tasks = s.exec(select(ReviewTask).order_by(ReviewTask.id)).all()
        assert [(t.reviewer, t.status) for t in tasks] == [("zhang", "closed"), ("li", "open")]
        assert s.exec(select(Event).where(Event.kind == "moved")).one().actor == "op"
    assert "改派" in c.page.content() and "学会部" in c.page.content()

    # re-send the review request: 李科长 gets it a second time, with a fresh token
    assert "已重新发出" in c.press(f"/subs/{sub.tracking}/resend-review")
    again = wait_for(lambda: len(mails(servers, "reviewer2", "请初审")) == 2 and mails(servers, "reviewer2", "请初审"))
    assert again and again[0]["Subject"] != again[1]["Subject"]

    # a reply from an address not on 李科长's list is held; the operator confirms it in the console
    deliver(servers, qq_reply(again[1], "unit2@example.test", "通过"), "unit2@example.test", "skxxhb@example.test")
    run_robot(robot)
    c.go("/exceptions", "exceptions")
    assert "待确认的回复（1）" in c.page.content()
    c.page.click("text=查看原邮件")
    c.shoot("message")
    held_id = int(c.page.url.rsplit("/", 1)[1])
    assert "已执行" in c.press(f"/inbound/{held_id}/confirm")
    assert wait_for(lambda: mails(servers, "leader1", "请审核"))  # the decision moved it to the next stage
    with Session(robot.engine) as s:
        assert s.exec(select(Event).where(Event.kind == "review-confirmed")).one().actor == "op"

    # withdraw: the open review closes, the history says who
    c.go(f"/subs/{sub.tracking}")
    assert "已撤回" in c.press(f"/subs/{sub.tracking}/withdraw", {"reason": "单位来电要求撤回"})
    sub = the_submission(robot)
    assert sub.status == "withdrawn"
    assert "单位来电要求撤回" in c.page.content() and "撤回" in c.page.content()


def test_an_uncertain_mail_is_resent_once_and_an_approved_one_marked_published(servers, robot, console):
    deliver(servers, gaojian(), "unit1@example.test", "skxkpb@example.test")
    run_robot(robot)
    receipts = mails(servers, "unit1", "已收到")
    assert len(receipts) == 1
    with Session(robot.engine) as s:
        receipt = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).one()
        receipt.status, receipt.last_error = "uncertain", "the robot stopped while sending"
        s.add(receipt)
        s.commit()
        receipt_id = receipt.id
    c = console
    c.sign_in("op")
    c.go("/exceptions")
    assert "不确定是否已发出" in c.page.content()
    assert "已重新放入" in c.press(f"/mail/{receipt_id}/resend")
    assert wait_for(lambda: len(mails(servers, "unit1", "已收到")) == 2)
    time.sleep(0.5)
    assert len(mails(servers, "unit1", "已收到")) == 2  # once more, not again and again
    with Session(robot.engine) as s:
        row = s.get(OutboxMessage, receipt_id)
        row.status = "failed"  # it failed a second time: no third try from the console
        s.add(row)
        s.commit()
    c.go("/exceptions")
    assert "已经重发过一次" in c.press(f"/mail/{receipt_id}/resend")
    assert "已标记为已发出" in c.press(f"/mail/{receipt_id}/mark-sent")
    with Session(robot.engine) as s:
        assert s.get(OutboxMessage, receipt_id).status == "sent"
        sub = s.exec(select(Submission)).one()
        sub.status, tracking = "approved", sub.tracking
        s.add(sub)
        s.commit()
    c.go(f"/subs/{tracking}")
    assert "已标记为已发布" in c.press(f"/subs/{tracking}/publish")
    published = the_submission(robot)
    assert (published.status, published.published_at is not None) == ("approved", True)
    assert "已发布" in c.page.content() and "标记为已发布" not in c.page.locator(".actions").inner_text()
    for path, name in (("/units", "units"), ("/digest?week=2026-W49", "digest")):
        c.go(path, name)


def test_a_return_entered_by_hand_changes_the_tally(servers, robot, console):
    robot.clock = lambda: datetime(2026, 11, 30, 10, 0, tzinfo=CHINA)
    aside(send_form, servers, "unit1", "沂水县科协", [("沂水县科协", "三百多")])  # a number no one can count
    run_robot(robot)
    with Session(robot.engine) as s:
        ret = s.exec(select(FormReturn)).one()
        assert not ret.valid
    c = console
    c.sign_in("op")
    c.go("/campaigns", "campaigns")
    c.go("/campaigns/guanzhu", "board")
    assert "有问题 1" in re.sub(r"\s+", " ", c.page.locator(".counts").first.inner_text())
    c.go(f"/returns/{ret.id}", "return")

    def tally() -> dict:
        response = c.page.request.get(c.url + "/campaigns/guanzhu/tally.xlsx")
        assert response.status == 200
        book = load_workbook(io.BytesIO(response.body()))
        return {r[0]: r[2] for r in book["汇总"].iter_rows(min_row=2, values_only=True) if r and r[0]}

    assert "沂水县科协" not in tally()
    # the rows read so far are filled in, what could not be read as the unit wrote it
    assert (c.page.input_value("input[name=r0-0]"), c.page.input_value("input[name=r0-1]")) == ("沂水县科协", "三百多")
    # saved unchanged: the same check as an emailed form, nothing recorded
    c.press(f"/returns/{ret.id}/enter")
    assert "不是" in c.page.locator(".error").last.inner_text()
    c.press(f"/returns/{ret.id}/enter", {"r0-0": "沂水县科协", "r0-1": "320"})
    assert "已录入" in c.page.locator(".flash").inner_text()
    with Session(robot.engine) as s:
        versions = s.exec(select(FormReturn).order_by(FormReturn.version)).all()
        assert [(v.version, v.format, v.valid) for v in versions] == [(1, "xlsx", False), (2, "manual", True)]
        assert s.exec(select(Event).where(Event.kind == "form-entered")).one().actor == "op"
    assert tally()["沂水县科协"] == 320
    c.go("/campaigns/guanzhu")
    assert "有效 1" in re.sub(r"\s+", " ", c.page.locator(".counts").first.inner_text())
