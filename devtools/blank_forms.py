"""The blank forms offices attach to reminders, made with real office software: each is an
HTML table converted to .docx by LibreOffice (`soffice --headless --convert-to docx`), as a
clerk's Word file would be. Run after changing a form's columns:

    PYTHONPATH=. .venv/bin/python -m devtools.blank_forms

writes the blank 附件 of each example office into its forms folder (config/forms, config/bijie-forms).
The robot reads a filled copy of each (tests/integration/test_blank_forms.py).
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (output file, 附件 label, title, header fields, columns, empty rows)
FORMS = [
    (ROOT / "config" / "forms" / "临沂科协微信公众号关注情况统计表.docx", "附件2", "临沂科协微信公众号关注情况统计表",
     ("填报单位", "填报时间"), ("序号", "单位名称", "关注人数（人）"), 8),
    (ROOT / "config" / "bijie-forms" / "毕节市科普宣传和信息管理员信息报送表.docx", "附件", "毕节市科普宣传和信息管理员信息报送表",
     ("报送单位（盖章）", "报送时间"), ("序号", "单位", "姓名", "政治面貌", "职务", "职称", "微信号", "手机号", "备注"), 8),
]


def page(label: str, title: str, fields: tuple[str, ...], columns: tuple[str, ...], rows: int) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + f"<td>{i}</td>" + "<td></td>" * (len(columns) - 1) + "</tr>" for i in range(1, rows + 1))
    line = "　　　　　　　　　".join(f"{e(f)}：" for f in fields)
    return (f'<html><head><meta charset="utf-8"><title>{e(title)}</title></head><body>'
            f"<p>{e(label)}</p><p align=\"center\"><b>{e(title)}</b></p><p>{line}</p>"
            f'<table border="1" cellspacing="0" cellpadding="4"><tr>{head}</tr>{body}</table></body></html>')


def convert(html_text: str, target: Path, soffice: str = "soffice", timeout: float = 120) -> Path:
    """The page as a .docx at `target`, written by LibreOffice."""
    with tempfile.TemporaryDirectory(prefix="mailbot-blank-") as tmp:
        source = Path(tmp) / f"{target.stem}.html"
        source.write_text(html_text, encoding="utf-8")
        subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp}/profile",
                        "--infilter=HTML (StarWriter)", "--convert-to", "docx:MS Word 2007 XML",
                        "--outdir", tmp, str(source)], check=True, capture_output=True, timeout=timeout)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / f"{target.stem}.docx", target)
    return target


def main() -> None:
    for target, label, title, fields, columns, rows in FORMS:
        print(convert(page(label, title, fields, columns, rows), target))


if __name__ == "__main__":
    main()
