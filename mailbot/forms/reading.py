"""read_form: one attachment's bytes → FormResult. Never raises for a bad file.

The format is sniffed from the content; .doc/.wps/.rtf/.odt/HTML go through LibreOffice when
it is installed, and say so in Chinese when it is not.
"""

from __future__ import annotations

from datetime import date

from mailbot.forms import office, readers
from mailbot.forms.readers import SCAN_WARNING, Document
from mailbot.forms.result import FormResult
from mailbot.forms.tables import fill_result
from mailbot.forms.templates import FormTemplate

_FORMAT_NAMES = {
    "doc": "Word 97-2003 / WPS 文字（.doc/.wps）", "rtf": "RTF", "odt": "OpenDocument 文本（.odt）",
    "html": "网页格式（HTML）", "ods": "OpenDocument 表格（.ods）", "xls": "Excel 97-2003 / WPS 表格（.xls/.et）",
}
_UNREADABLE = {
    "empty": "文件是空的",
    "encrypted": "文件设置了打开密码，无法读取；请对方去掉密码后重新发送",
    "mhtml": "这是“单个文件网页”（MHTML）格式，无法读取；请对方另存为 .docx 或 .xlsx 后重新发送",
    "pptx": "这是演示文稿（PPT），不是统计表",
}


def read_form(data: bytes, filename: str, templates: list[FormTemplate], *, today: date | None = None,
              soffice: str | bool | None = None, timeout: float = office.DEFAULT_TIMEOUT) -> FormResult:
    """Read one statistics form.

    Args:
        data: the attachment's bytes; `filename` is only reported, never trusted for the format.
        templates: from load_templates(); the form is recognised by its column headers.
        today: the year for dates written without one (12月20日).
        soffice: LibreOffice program; None finds `soffice` on PATH, False means none.
        timeout: seconds one LibreOffice conversion may take.
    Returns:
        A FormResult; problems with the file are in `warnings`, problems with cells in `errors`.
    """
    fmt = office.sniff_format(data)
    result = FormResult(format=fmt, filename=filename)
    try:
        document = _read_document(data, fmt, office.find_soffice(soffice), timeout)
    except office.ConversionError as exc:
        result.warnings.append(str(exc))
        return result
    except Exception as exc:  # noqa: BLE001 - a damaged file must become a warning, not a crash
        result.warnings.append(f"文件无法读取，可能已损坏（{type(exc).__name__}: {str(exc)[:120]}）")
        return result
    result.warnings += document.warnings
    if document.blocks:
        fill_result(result, document, templates, today)
    return result


def _read_document(data: bytes, fmt: str, soffice: str | None, timeout: float) -> Document:
    direct = {"docx": readers.read_docx, "xlsx": readers.read_xlsx, "csv": readers.read_csv,
              "pdf": readers.read_pdf}
    if fmt in direct:
        return direct[fmt](data)
    if fmt == "image":
        return Document([], [SCAN_WARNING])
    if fmt == "xls":
        return _read_xls(data, soffice, timeout)
    if fmt in office.CONVERSIONS:
        converted = office.convert(data, fmt, _need(fmt, soffice), timeout)
        target = office.CONVERSIONS[fmt][1]
        return readers.read_xlsx(converted) if target.startswith("xlsx") else readers.read_docx(converted)
    return Document([], [_UNREADABLE.get(fmt, "无法识别的文件格式，读不出表格；请对方发送 .docx 或 .xlsx 文件")])


def _read_xls(data: bytes, soffice: str | None, timeout: float) -> Document:
    """xlrd first; an .xls it rejects (some WPS files) goes through LibreOffice if there is one."""
    try:
        return readers.read_xls(data)
    except Exception:  # noqa: BLE001 - xlrd raises many kinds for odd BIFF files
        if not soffice:
            raise
    return readers.read_xlsx(office.convert(data, "xls", soffice, timeout))


def _need(fmt: str, soffice: str | None) -> str:
    if not soffice:
        raise office.ConversionError(f"{_FORMAT_NAMES[fmt]} 格式需要 LibreOffice 才能读取，本机没有安装；"
                                     "请安装 LibreOffice，或请对方另存为 .docx/.xlsx 后重新发送")
    return soffice
