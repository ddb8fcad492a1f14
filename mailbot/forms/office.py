"""What a form file is, by its bytes, and LibreOffice conversions for the old binary formats.

.doc/.wps/.rtf/.odt/HTML become .docx and .ods (or an .xls xlrd cannot read) becomes .xlsx,
each in a private temp dir with its own LibreOffice profile and a time limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from mailbot.read.sniff import DOCX, PPTX, XLSX, sniff_type

_BY_MIME = {
    "application/x-empty": "empty", DOCX: "docx", XLSX: "xlsx", PPTX: "pptx",
    "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/x-encrypted-office": "encrypted", "application/x-ole-storage": "ole",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/pdf": "pdf", "text/html": "html", "application/rtf": "rtf",
    "text/plain": "csv", "text/csv": "csv", "application/zip": "zip",
}
# Formats LibreOffice turns into one we read: format → (input suffix, target, input filter).
CONVERSIONS = {
    "doc": (".doc", "docx", None), "rtf": (".rtf", "docx", None), "odt": (".odt", "docx", None),
    "html": (".html", "docx:MS Word 2007 XML", "HTML (StarWriter)"),
    "xls": (".xls", "xlsx", None), "ods": (".ods", "xlsx", None),
}
DEFAULT_TIMEOUT = 60.0


class ConversionError(Exception):
    """LibreOffice is missing, failed or took too long; the message is Chinese, for the reader."""


def sniff_format(data: bytes) -> str:
    """docx, doc, xlsx, xls, csv, pdf, image, html, rtf, odt, ods, mhtml, encrypted, empty … or unknown."""
    mime = sniff_type(data)
    if mime.startswith("image/"):
        return "image"
    if mime == "text/plain" and data[:200].lstrip().lower().startswith(b"mime-version"):
        return "mhtml"  # Word's "single file web page" saved under a .doc name
    return _BY_MIME.get(mime, "unknown")


def find_soffice(soffice: str | bool | None = None) -> str | None:
    """The LibreOffice program: the one given, else `soffice`/`libreoffice` on PATH; False: none."""
    if soffice is False or soffice == "":
        return None
    if isinstance(soffice, str):
        return soffice
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    default = Path("/usr/lib/libreoffice/program/soffice")
    return str(default) if default.exists() else None


def convert(data: bytes, fmt: str, soffice: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """The file converted by LibreOffice headless (see CONVERSIONS); raises ConversionError."""
    suffix, target, infilter = CONVERSIONS[fmt]
    with tempfile.TemporaryDirectory(prefix="mailbot-lo-") as tmp:
        src = Path(tmp, "form" + suffix)
        src.write_bytes(data)
        out = Path(tmp, "out")
        # Every process gets its own profile: parallel conversions otherwise fight over one.
        cmd = [soffice, f"-env:UserInstallation={Path(tmp, 'profile').as_uri()}", "--headless",
               "--norestore", "--nolockcheck", "--nologo", "--nodefault"]
        if infilter:
            cmd.append(f"--infilter={infilter}")
        cmd += ["--convert-to", target, "--outdir", str(out), str(src)]
        _run(cmd, timeout, env={**os.environ, "HOME": tmp})
        produced = list(out.glob("form.*")) if out.is_dir() else []
        if not produced:
            raise ConversionError("LibreOffice 没能转换这个文件（文件可能已损坏）")
        return produced[0].read_bytes()


def _run(cmd: list[str], timeout: float, env: dict) -> None:
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as exc:
        raise ConversionError(f"无法启动 LibreOffice（{exc.strerror or exc}）") from exc
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # soffice starts helper processes: end the whole group this call created.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ConversionError(f"LibreOffice 转换超时（超过 {timeout:g} 秒）") from None
