"""Whether an attachment can be opened, and if not why: a short code for programs and a polite
sentence for the unit. Reads only the bytes it is given and never decompresses: zip sizes come
from the central directory, encryption from headers. Also the name to show people."""

from __future__ import annotations

import io
import os
import re
import struct
import unicodedata
import zipfile
from dataclasses import dataclass

from mailbot.read import passwords
from mailbot.read.sniff import DOCX, OLE_MAGIC, PPTX, XLSX, sniff_type

MIB = 2**20
# An entry smaller than this may compress any amount: a blank styled sheet compresses 200:1.
RATIO_GRACE = MIB


@dataclass(frozen=True)
class Problem:
    """Why a file cannot be opened: `code` for programs, `message` (Chinese) for the unit."""

    code: str
    message: str


EMPTY, ENCRYPTED, MISMATCH, TRUNCATED, DAMAGED, BOMB = (
    "empty", "encrypted", "mismatch", "truncated", "damaged", "bomb")


def check_attachment(filename: str, content_type: str, data: bytes, *, max_expanded: int = 200 * MIB,
                     max_ratio: int = 100, max_entries: int = 10_000) -> Problem | None:
    """None when the file can be opened; else the Problem.

    Args:
        filename: the name as sent (only its extension is used, to tell what was meant).
        content_type: the declared MIME type; used when the name has no extension.
        data: the file's bytes.
        max_expanded: the most an archive (zip, docx, xlsx …) may expand to, by its declared sizes.
        max_ratio: the largest compression ratio of an entry bigger than 1 MiB, or of the whole.
        max_entries: the most entries an archive may have.
    """
    if not data:
        return Problem(EMPTY, "是空文件（0 字节），可能添加附件时没有成功，请重新添加后再发送。")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        problem = _check_zip(data, max_expanded, max_ratio, max_entries)
    elif data.startswith(OLE_MAGIC):
        problem = _check_ole(data)
    elif b"%PDF-" in data[:1024]:
        problem = _check_pdf(data)
    elif data.startswith(b"\xff\xd8\xff"):
        problem = _check_jpeg(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        problem = None if b"IEND\xaeB`\x82" in data else _truncated()
    else:
        problem = None
    return problem or _check_mismatch(filename, content_type, data)


def describe(filename: str, problem: Problem, index: int = 1) -> str:
    """One sentence for a receipt: 附件“报告.docx”设置了打开密码……"""
    return f"附件“{display_name(filename, index)}”{problem.message}"


# ---- messages ---------------------------------------------------------------------------------

def _encrypted() -> Problem:
    return Problem(ENCRYPTED, "设置了打开密码，我们无法打开。请取消密码后重新发送。")


def _truncated() -> Problem:
    return Problem(TRUNCATED, "内容不完整（文件末尾缺失），可能是上传或发送时中断了。请重新发送完整的文件。")


def _damaged() -> Problem:
    return Problem(DAMAGED, "已损坏，无法打开。请用原软件重新保存后再发送。")


def _bomb(why: str) -> Problem:
    return Problem(BOMB, f"{why}，为安全起见我们没有打开。请直接发送其中需要的文件，或拆分后再发送。")


# ---- zip: declared sizes only ------------------------------------------------------------------

def _check_zip(data: bytes, max_expanded: int, max_ratio: int, max_entries: int) -> Problem | None:
    # Count central directory headers before zipfile builds an object for each one.
    if data.count(b"PK\x01\x02") > max_entries:
        return _bomb(f"是压缩文件，其中文件数超过 {max_entries:,} 个")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except Exception:  # BadZipFile, NotImplementedError (odd versions), UnicodeDecodeError (names) …
        tail = data[-(65536 + 22):]
        return _truncated() if b"PK\x05\x06" not in tail else _damaged()
    if len(infos) > max_entries:
        return _bomb(f"是压缩文件，其中文件数超过 {max_entries:,} 个")
    return (_zip_layout(data, infos) or _zip_sizes(infos, max_expanded, max_ratio)
            or _zip_encrypted(infos, data))


def _zip_sizes(infos: list[zipfile.ZipInfo], max_expanded: int, max_ratio: int) -> Problem | None:
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > max_expanded:
        return _bomb(f"解压后约 {_mb(total)}，超过了可处理的上限 {_mb(max_expanded)}")
    for info in infos:
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size < info.file_size:
            return _bomb("的内部数据与它声明的大小不符")
        if info.file_size > RATIO_GRACE and info.file_size > max_ratio * max(info.compress_size, 1):
            return _bomb(f"内部有数据压缩了约 {info.file_size // max(info.compress_size, 1):,} 倍")
    if total > RATIO_GRACE and total > max_ratio * max(packed, 1):
        return _bomb(f"解压后约为原来的 {total // max(packed, 1):,} 倍")
    return None


def _zip_layout(data: bytes, infos: list[zipfile.ZipInfo]) -> Problem | None:
    """Entries must sit one after another: shared or overlapping data is a bomb's trick."""
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        start = info.header_offset
        header = data[start:start + 30]
        if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
            return _damaged()
        if start < end:
            return _bomb("内部多个文件共用同一段数据（压缩炸弹的特征）")
        name_len, extra_len = struct.unpack_from("<HH", header, 26)
        end = start + 30 + name_len + extra_len + info.compress_size
        if end > len(data):
            return _truncated()
    return None


def _zip_encrypted(infos: list[zipfile.ZipInfo], data: bytes) -> Problem | None:
    if any(i.flag_bits & 0x1 for i in infos):
        return _encrypted()
    manifest = next((i for i in infos if i.filename == "META-INF/manifest.xml"), None)
    if manifest is not None and manifest.file_size <= MIB:
        # ODF (.odt/.ods) encrypts inside the package: the manifest says so.
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                text = zf.read(manifest)
        except Exception:  # a damaged manifest: the reader will say so; not ours to judge
            return None
        if b"encryption-data" in text:
            return _encrypted()
    return None


def _mb(size: int) -> str:
    return f"{size / MIB:,.0f} MB" if size < 2**30 else f"{size / 2**30:,.1f} GB"


# ---- OLE: Word, Excel, PowerPoint and their encrypted OOXML wrapper ----------------------------

def _check_ole(data: bytes) -> Problem | None:
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            streams = {"/".join(s) for s in ole.listdir()}
            if streams & {"EncryptionInfo", "EncryptedPackage", "EncryptedSummary"}:
                return _encrypted()
            if "WordDocument" in streams:
                fib = ole.openstream("WordDocument").read(0x20)
                return _encrypted() if passwords.word_encrypted(fib) else None
            book = next((s for s in ("Workbook", "Book") if s in streams), None)
            if book:
                head = ole.openstream(book).read(64 * 1024)
                return _encrypted() if passwords.excel_needs_password(head) else None
    except Exception:  # olefile raises many kinds on a cut or damaged container
        return _truncated() if len(data) % 512 else _damaged()
    return None


# ---- PDF ---------------------------------------------------------------------------------------

def _check_pdf(data: bytes) -> Problem | None:
    if b"%%EOF" not in data[-16 * 1024:] or _linearized_short(data):
        return _truncated()
    return _encrypted() if passwords.pdf_needs_password(data) else None


_LINEARIZED = re.compile(rb"/Linearized\s+[\d.]+.{0,200}?/L\s+(\d+)", re.DOTALL)


def _linearized_short(data: bytes) -> bool:
    """A linearized PDF states its length: shorter means cut (it has a %%EOF near its start)."""
    match = _LINEARIZED.search(data[:2048])
    return bool(match) and len(data) < int(match.group(1))


# ---- images ------------------------------------------------------------------------------------

def _check_jpeg(data: bytes) -> Problem | None:
    """Walk the segments to the scan, then look for the end marker after it."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # junk between segments: viewers skip it, and so do we
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if marker == 0xDA:
            return None if data.find(b"\xff\xd9", pos + 2 + length) != -1 else _truncated()
        pos += 2 + length
    return _truncated()


# ---- content against name ----------------------------------------------------------------------

# What a name or a declared type promises: formats with a fixed signature of their own.
_CLAIMS = {
    ".docx": "Word 文档", ".docm": "Word 文档", ".dotx": "Word 文档", ".doc": "Word 文档",
    ".dot": "Word 文档", ".wps": "WPS 文字文档", ".xlsx": "Excel 表格", ".xlsm": "Excel 表格",
    ".xls": "Excel 表格", ".et": "WPS 表格", ".pptx": "PowerPoint 演示文稿", ".ppt": "PowerPoint 演示文稿",
    ".dps": "WPS 演示文稿", ".pdf": "PDF 文件", ".jpg": "图片", ".jpeg": "图片", ".png": "图片", ".gif": "图片",
    ".bmp": "图片", ".webp": "图片", ".tif": "图片", ".tiff": "图片", ".zip": "压缩包", ".rar": "压缩包",
    ".7z": "压缩包", ".odt": "文档", ".ods": "表格", ".ofd": "OFD 文件",
}
_DECLARED = {DOCX: ".docx", XLSX: ".xlsx", PPTX: ".pptx", "application/msword": ".doc",
             "application/vnd.ms-excel": ".xls", "application/vnd.ms-powerpoint": ".ppt",
             "application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png", "application/zip": ".zip"}
# Word, Excel and WPS open web pages and text saved under their old names (网页另存为 .doc).
_TEXT_TOLERANT = {".doc", ".dot", ".wps", ".xls", ".et"}


def _check_mismatch(filename: str, content_type: str, data: bytes) -> Problem | None:
    """Flag only content nobody can read as what its name promises; a .doc named .wps is fine."""
    ext = os.path.splitext(display_name(filename))[1].lower()
    if ext not in _CLAIMS:
        ext = _DECLARED.get((content_type or "").split(";")[0].strip().lower(), "")
    if not ext:
        return None
    actual = sniff_type(data, content_type)
    if actual in ("text/html", "text/plain", "text/csv"):
        if ext in _TEXT_TOLERANT:
            return None
        what = "网页" if actual == "text/html" else "纯文本"
    elif actual == "application/octet-stream" or (
            actual == "application/x-ole-storage" and ext not in (".wps", ".et", ".dps")):
        what = "无法识别的数据"
    else:
        return None
    return Problem(MISMATCH, f"的文件名表明是{_CLAIMS[ext]}，但内容实际是{what}，我们无法打开。"
                             "请用办公软件打开原文件，另存为正确的格式后再发送。")


# ---- the name to show people -------------------------------------------------------------------

_PATH = re.compile(r"[/\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_DISPLAY = 80


def display_name(filename: str, index: int = 1) -> str:
    """The file name to show people in mail and the CLI (not the name on disk: see parse.safe_name).

    Keeps every printable character the sender typed (：？* and the like included) but drops
    any path, control, bidi and other invisible format characters, so a name cannot move
    text around or pose as another; folds odd spaces; shortens a very long stem; `附件N`
    when nothing is left.
    """
    name = unicodedata.normalize("NFC", filename or "")
    name = _DRIVE.sub("", _PATH.split(name)[-1])
    kept = []
    for ch in name:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            kept.append(" " if ch in "\t\r\n\u2028\u2029" else "")
        else:
            kept.append(" " if cat == "Zs" else ch)
    name = re.sub(r" {2,}", " ", "".join(kept)).strip()
    if not name.strip("."):
        return f"附件{index}"
    stem, ext = os.path.splitext(name)
    if len(name) > MAX_DISPLAY:
        ext = ext if len(ext) <= 10 else ""
        name = stem[:MAX_DISPLAY - len(ext) - 1].rstrip() + "…" + ext
    return name
