"""Mail templates are read once (no stat per letter) and again after `forget_templates`,
which the robot's reload (SIGHUP) calls: an edited wording is used from then on."""

from __future__ import annotations

import shutil

from jinja2 import FileSystemLoader

from mailbot import outbox


def subject() -> str:
    return outbox.render("alert-summary", organisation="某市科协", department_names=[], contact=None,
                         contact_person=None, date="2026年12月06日", total=0, waiting=[], failed=[],
                         pending=0, problems=[])[0]


def test_an_edited_template_is_used_after_forget_templates(tmp_path, monkeypatch):
    folder = tmp_path / "templates"
    shutil.copytree(outbox.TEMPLATES, folder)
    monkeypatch.setattr(outbox._env, "loader", FileSystemLoader(folder))
    monkeypatch.setattr(outbox, "TEMPLATES", folder)
    outbox.forget_templates()
    try:
        before = subject()
        path = folder / "alert-summary.subject.j2"
        path.write_text("改过的标题 {{ date }}", encoding="utf-8")
        again = subject()
        assert again == before  # read once: the edit is not seen yet
        outbox.forget_templates()
        edited = subject()
        assert edited == "改过的标题 2026年12月06日"
    finally:
        monkeypatch.undo()
        outbox.forget_templates()
