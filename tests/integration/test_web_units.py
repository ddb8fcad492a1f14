"""The roster in the console (Starlette's TestClient on the real database): an operator adds,
edits and removes units with the same code as `mailbot units` (the file keeps its comments,
`mailbot units list` shows the change, the console's own view follows at once, each change
is an event with who made it); a refused edit shows the roster's reason in Chinese and leaves
the file as it was; clerks and leaders only look; forms without the CSRF token are refused."""

from __future__ import annotations

import json

import pytest
from conftest import mailbot_main
from sqlmodel import Session, select

from mailbot import config
from mailbot.store import Event
from webkit import REVIEW, add_people, client, signed_in

pytestmark = pytest.mark.integration

ROSTER = """# 单位名册：注释在编辑后仍保留
units:
  - name: 沂水县科协      # 县区科协
    aliases: [沂水科协]
    category: 县区科协
    parent: 沂水县
    addresses: [unit1@example.test]
  # 学会
  - name: 临沂市农学会
    aliases: [市农学会]
    category: 学会
    addresses: [unit2@example.test]
  - name: 临沂市科技馆
    category: 科普基地
    domains: [kjg.example.test]
"""


class _NoServers:
    host, imap_port, smtp_port = "127.0.0.1", 1, 1

    @staticmethod
    def address(name: str) -> str:
        return f"{name}@example.test"


def with_roster(make_settings, engine, tmp_path, **over):
    path = tmp_path / "units.yaml"
    path.write_text(ROSTER, encoding="utf-8")
    units, problems = config.load_roster(path)
    assert not problems
    settings = make_settings(_NoServers(), **REVIEW, roster=str(path), units=units, **over)
    settings.storage.mkdir(parents=True, exist_ok=True)
    add_people(engine)
    return settings, path


@pytest.fixture
def roster(make_settings, engine, tmp_path):
    return with_roster(make_settings, engine, tmp_path)


def cli_units(path) -> dict:
    done = mailbot_main("units", "list", "--json", "--roster", path)
    assert done.returncode == 0, done.stderr
    return {u["name"]: u for u in json.loads(done.stdout)}


def events(engine) -> list[tuple]:
    with Session(engine) as s:
        return [(e.kind, e.actor, e.detail) for e in s.exec(select(Event).where(Event.kind.like("unit-%"))
                                                             .order_by(Event.id))]


def add_form(token: str, **over) -> dict:
    return {"csrf": token, "name": "兰山区科协", "category": "县区科协", "parent": "兰山区", "aliases": "兰山科协",
            "addresses": "lskx@lanshan.example、office@lanshan.example", "domains": "", **over}


def test_an_operator_adds_edits_and_removes_a_unit_in_the_roster_file(roster, engine):
    settings, path = roster
    c, token = signed_in(settings, engine, "op")
    assert 'action="/units/add"' in c.get("/units").text
    r = c.post("/units/add", data=add_form(token))
    assert r.status_code == 303 and r.headers["location"] == "/units"
    text = path.read_text(encoding="utf-8")
    assert "# 单位名册：注释在编辑后仍保留" in text and "# 县区科协" in text and "# 学会" in text
    unit = cli_units(path)["兰山区科协"]
    assert (unit["category"], unit["parent"], unit["aliases"], unit["addresses"]) == (
        "县区科协", "兰山区", ["兰山科协"], ["lskx@lanshan.example", "office@lanshan.example"])
    page = c.get("/units").text  # the console's own view follows the file at once
    assert "已将 兰山区科协 添加到名册" in page and "共 4 个单位" in page and "lskx@lanshan.example" in page
    assert "兰山区科协" in {u.name for u in c.app.state.console.office.directory.units}  # what filing uses

    edit_page = c.get("/units?edit=兰山区科协").text
    assert 'name="original" value="兰山区科协"' in edit_page and "lskx@lanshan.example、office@lanshan.example" in edit_page
    r = c.post("/units/edit", data=add_form(token, original="兰山区科协", name="临沂市兰山区科协", category="其他",
                                            parent="", aliases="兰山科协 兰山", addresses="new@lanshan.example"))
    assert r.status_code == 303
    units = cli_units(path)
    assert "兰山区科协" not in units
    unit = units["临沂市兰山区科协"]
    assert (unit["category"], unit["parent"], unit["aliases"], unit["addresses"]) == (
        "其他", None, ["兰山科协", "兰山"], ["new@lanshan.example"])
    assert "已修改 临沂市兰山区科协" in c.get("/units").text
    assert "# 学会" in path.read_text(encoding="utf-8")

    refused = c.post("/units/remove", data={"csrf": token, "original": "临沂市兰山区科协"})  # not confirmed
    assert refused.status_code == 400 and "请勾选" in refused.text and "临沂市兰山区科协" in cli_units(path)
    assert 'name="addresses" value="new@lanshan.example"' in refused.text  # the edit form, filled in
    r = c.post("/units/remove", data={"csrf": token, "original": "临沂市兰山区科协", "confirm": "yes"})
    assert r.status_code == 303
    assert set(cli_units(path)) == {"沂水县科协", "临沂市农学会", "临沂市科技馆"}
    page = c.get("/units").text
    assert "已从名册删除 临沂市兰山区科协" in page and "共 3 个单位" in page
    assert "临沂市兰山区科协" not in {u.name for u in c.app.state.console.office.directory.units}
    assert events(engine) == [
        ("unit-added", "op", "兰山区科协"),
        ("unit-changed", "op", "兰山区科协 → 临沂市兰山区科协 (name, category, parent, aliases, addresses)"),
        ("unit-removed", "op", "临沂市兰山区科协"),
    ]
    assert "最近的名册修改" in page


@pytest.mark.parametrize("form, message", [
    ({"name": "沂水县科协"}, "名称或简称 沂水县科协 已用于 沂水县科协"),
    ({"aliases": "市农学会"}, "名称或简称 市农学会 已用于 临沂市农学会"),
    ({"addresses": "lskx.lanshan.example"}, "lskx.lanshan.example 不是邮件地址（缺少 @）"),
])
def test_a_refused_addition_shows_the_reason_and_leaves_the_file_as_it_was(roster, engine, form, message):
    settings, path = roster
    c, token = signed_in(settings, engine, "op")
    before = path.read_bytes()
    r = c.post("/units/add", data=add_form(token, **form))
    assert r.status_code == 400
    assert "名册没有修改" in r.text and message in r.text and "Traceback" not in r.text
    assert 'value="县区科协"' in r.text  # what they typed is still in the form
    assert path.read_bytes() == before and events(engine) == []


def test_a_refused_edit_shows_the_reason_and_leaves_the_file_as_it_was(roster, engine):
    settings, path = roster
    c, token = signed_in(settings, engine, "op")
    before = path.read_bytes()
    for data, message in (
            ({"original": "临沂市科技馆", "name": "临沂市农学会", "category": "科普基地"}, "已用于 临沂市农学会"),
            ({"original": "临沂市科技馆", "name": "临沂市科技馆", "addresses": "bad-address"}, "bad-address 不是邮件地址"),
            ({"original": "已删除的单位", "name": "已删除的单位"}, "名册中没有名为 已删除的单位 的单位")):
        r = c.post("/units/edit", data={"csrf": token, **data})
        assert r.status_code == 400 and message in r.text, r.text
    assert path.read_bytes() == before and events(engine) == []


@pytest.mark.parametrize("who", ["kp", "boss"])
def test_clerks_and_leaders_see_the_roster_without_forms_and_cannot_change_it(roster, engine, who):
    settings, path = roster
    c, token = signed_in(settings, engine, who)
    page = c.get("/units").text
    assert "沂水县科协" in page and "<form method=\"post\" action=\"/units" not in page and "?edit=" not in page
    before = path.read_bytes()
    for action, data in (("add", add_form(token)), ("edit", {"csrf": token, "original": "沂水县科协", "name": "x"}),
                         ("remove", {"csrf": token, "original": "沂水县科协", "confirm": "yes"})):
        r = c.post(f"/units/{action}", data=data)
        assert r.status_code == 403 and "只能查看，不能修改" in r.text, action
    assert path.read_bytes() == before and events(engine) == []


def test_a_roster_form_without_the_csrf_token_or_sign_in_is_refused(roster, engine):
    settings, path = roster
    before = path.read_bytes()
    c, token = signed_in(settings, engine, "op")
    for data in ({}, {"csrf": "forged"}, {"csrf": token[:-1]}):
        r = c.post("/units/add", data={**add_form(token), **data} if data else {
            k: v for k, v in add_form(token).items() if k != "csrf"})
        assert r.status_code == 403 and "页面已过期" in r.text
    assert client(settings, engine).post("/units/add", data=add_form(token)).status_code == 403
    assert path.read_bytes() == before and events(engine) == []


def test_a_change_made_with_the_cli_shows_in_the_running_console(roster, engine):
    settings, path = roster
    c, _ = signed_in(settings, engine, "op")
    assert "共 3 个单位" in c.get("/units").text
    done = mailbot_main("units", "add", "兰山区科协", "--category", "县区科协", "--roster", path)
    assert done.returncode == 0, done.stderr
    assert "共 4 个单位" in c.get("/units").text


def test_without_a_roster_file_the_operator_is_told_whom_to_ask(make_settings, engine):
    settings = make_settings(_NoServers(), **REVIEW)
    add_people(engine)
    c, token = signed_in(settings, engine, "op")
    page = c.get("/units").text
    assert "单位写在主配置文件中" in page and 'action="/units/add"' not in page
    r = c.post("/units/add", data=add_form(token))
    assert r.status_code == 400 and "不能在这里修改" in r.text


def test_a_roster_edit_asks_the_daemon_running_the_console_to_reload(roster, engine):
    import threading

    from webkit import TestClient, create_app, csrf_of, sign_in

    settings, path = roster
    asked = threading.Event()  # the daemon passes its reload_requested event's set
    c = TestClient(create_app(settings, engine, on_mail=lambda: None, on_roster=asked.set),
                   base_url="http://testserver", follow_redirects=False)
    assert sign_in(c, "op").status_code == 303
    token = csrf_of(c.get("/units").text)
    refused = c.post("/units/add", data=add_form(token, addresses="nope"))
    assert refused.status_code == 400 and not asked.is_set()
    assert c.post("/units/add", data=add_form(token)).status_code == 303 and asked.is_set()


@pytest.mark.slow
def test_an_operator_adds_and_edits_a_unit_in_the_browser(roster, engine):
    """One pass in Chromium (as test_web_browser.py): the add form inside its 添加单位
    fold, then the 修改 link and the edit form; both pages photographed at 1280 and 390 px."""
    from types import SimpleNamespace

    from test_web_browser import CHROMIUM, Console

    from mailbot import clock
    from mailbot.office import Office

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    settings, path = roster
    rt = SimpleNamespace(settings=settings, engine=engine, office=Office.load(settings), clock=clock.now)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        console = Console(rt, browser)
        try:
            console.sign_in("op")
            console.go("/units")
            console.page.click("summary")
            said = console.press("/units/add", {"name": "兰山区科协", "category": "县区科协",
                                                "addresses": "lskx@lanshan.example"})
            assert "已将 兰山区科协 添加到名册" in said
            console.shoot("units")
            console.page.locator("tr", has_text="兰山区科协").get_by_role("link", name="修改").click()
            console.page.wait_for_load_state()
            console.shoot("unit-edit")
            said = console.press("/units/edit", {"aliases": "兰山科协"})
            assert "已修改 兰山区科协" in said
        finally:
            console.close()
            browser.close()
    assert cli_units(path)["兰山区科协"]["aliases"] == ["兰山科协"]


def test_a_change_that_would_break_a_campaigns_audience_is_refused(make_settings, engine, tmp_path):
    """The robot would refuse the configuration afterwards (a reload, the next start): the
    console says why and leaves the file alone; a change the campaign does not care about passes."""
    from test_campaigns import CAMPAIGN

    settings, path = with_roster(make_settings, engine, tmp_path, **CAMPAIGN)
    c, token = signed_in(settings, engine, "op")
    before = path.read_bytes()
    for action, data, message in (
            ("remove", {"original": "临沂市农学会", "confirm": "yes"}, "单位名册中没有 临沂市农学会"),
            ("edit", {"original": "临沂市农学会", "name": "临沂市农业学会", "category": "学会"}, "单位名册中没有 临沂市农学会"),
            ("edit", {"original": "沂水县科协", "name": "沂水县科协", "category": "其他", "aliases": "沂水科协",
                      "parent": "沂水县", "addresses": "unit1@example.test"}, "单位名册中没有类别为 县区科协 的单位")):
        r = c.post(f"/units/{action}", data={"csrf": token, **data})
        assert r.status_code == 400 and "报表活动用到了" in r.text and message in r.text, (action, r.text)
    assert path.read_bytes() == before and events(engine) == []
    r = c.post("/units/edit", data={"csrf": token, "original": "临沂市农学会", "name": "临沂市农学会", "category": "学会",
                                    "aliases": "市农学会", "addresses": "unit2@example.test new@example.test"})
    assert r.status_code == 303
    assert cli_units(path)["临沂市农学会"]["addresses"] == ["unit2@example.test", "new@example.test"]


def test_the_cli_refuses_the_same_change_when_the_roster_is_the_configurations(make_settings, engine, tmp_path):
    import yaml
    from conftest import PASSWORD_ENV
    from test_campaigns import CAMPAIGN

    settings, path = with_roster(make_settings, engine, tmp_path, **CAMPAIGN)
    data = settings.model_dump(mode="json", exclude_none=True)
    data.pop("units")
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    before = path.read_bytes()
    done = mailbot_main("units", "remove", "临沂市农学会", "--config", cfg, env={PASSWORD_ENV: "secret"})
    assert done.returncode == 2 and "报表活动用到了" in done.stdout + done.stderr, done.stdout + done.stderr
    assert path.read_bytes() == before
    done = mailbot_main("units", "remove", "临沂市科技馆", "--config", cfg, env={PASSWORD_ENV: "secret"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "临沂市科技馆" not in cli_units(path)
