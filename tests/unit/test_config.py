"""Configuration: every problem reported at once, each with file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailbot.config import ConfigError, load

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "config.yaml").read_text(encoding="utf-8"))
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_config_reports_every_problem(case, tmp_path):
    path = tmp_path / "mailbot.yaml"
    roster = tmp_path / "units.yaml"
    path.write_text(case["yaml"].replace("ROSTER", str(roster)), encoding="utf-8")
    if "roster" in case:
        roster.write_text(case["roster"], encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    problems = [(p.key, p.message, p.file) for p in info.value.problems]
    for key, fragment in case["expect"]:
        assert any(k == key and fragment in m for k, m, _ in problems), (key, fragment, problems)
    assert all(f == str(roster if "roster" in case else path) for _, _, f in problems)
    assert len(problems) == len(case["expect"]), problems


def test_example_config_is_valid_and_complete(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative paths are read from the config file's folder, not the CWD
    settings = load(ROOT / "config" / "mailbot.example.yaml")
    assert settings.roster == ROOT / "config" / "units.example.yaml" and settings.units
    assert settings.forms_folder == ROOT / "config" / "forms"
    assert settings.storage == ROOT / "var"
    assert [b.name for b in settings.mailboxes] == ["skxkpb", "skxxhb", "skxdxb"]
    assert [d.name for d in settings.departments] == ["科普部", "学会部", "调宣部"]
    assert settings.timezone == "Asia/Shanghai"
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("var/mailbot.db")
    with pytest.raises(ConfigError) as info:  # secrets are checked only when asked
        load(ROOT / "config" / "mailbot.example.yaml", check_secrets=True)
    assert any("MAILBOT_PASSWORD_SKXKPB" in p.message for p in info.value.problems)
    monkeypatch.setenv("MAILBOT_PASSWORD_SKXKPB", "x")
    monkeypatch.setenv("MAILBOT_PASSWORD_SKXXHB", "x")
    monkeypatch.setenv("MAILBOT_PASSWORD_SKXDXB", "x")
    assert load(ROOT / "config" / "mailbot.example.yaml", check_secrets=True).mailbox("skxdxb").password() == "x"


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml")
    assert "mailbot.example.yaml" in str(info.value)


def test_bijie_example_is_a_whole_office_of_its_own(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load(ROOT / "config" / "bijie.example.yaml")
    [box] = settings.mailboxes
    assert (box.host, box.smtp_server, box.tls) == ("imap.163.com", "smtp.163.com", "implicit")
    assert not settings.review.stages and not settings.reviewers
    [campaign] = settings.campaigns
    assert campaign.require_stamped and campaign.attach_template.is_file()
    assert campaign.department == "quankeban"  # written by name in the file
    assert [(a.name, str(a.deadline)) for a in campaign.audiences] == [("市级单位", "2019-10-25"),
                                                                        ("县区办", "2019-11-05")]
    text = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "config").glob("bijie*.yaml"))
    text += "".join(p.read_text(encoding="utf-8") for p in (ROOT / "config" / "bijie-forms").glob("*.yaml"))
    assert not any(word in text for word in ("临沂", "科普部", "学会部", "调宣部"))


def test_example_campaign_addresses_whom_the_notice_addresses(monkeypatch, tmp_path):
    """各县区科协，高新区科协，各市级学会、协会、研究会、企事业单位科协 (seed 000): every category
    has a unit on the example roster, and the blank 附件2 (made by LibreOffice) is attached."""
    monkeypatch.chdir(tmp_path)
    settings = load(ROOT / "config" / "mailbot.example.yaml")
    [campaign] = settings.campaigns
    asked = {c for a in campaign.audiences for c in a.categories}
    assert asked == {"县区科协", "高新区科协", "学会", "协会", "研究会", "企事业科协"}
    assert asked <= {u.category for u in settings.units}
    import zipfile

    with zipfile.ZipFile(campaign.attach_template) as docx:
        assert b"LibreOffice" in docx.read("docProps/app.xml")
