"""Content sniffing for attachments: what a file is by its bytes, never by its name.

Office files get special care: an OLE2 container is told apart by its streams
(Word/WPS vs Excel/ET), a zip by its parts (docx/xlsx/pptx/odf), since Chinese
offices rename freely between .doc, .wps, .docx and .et.
"""

from __future__ import annotations

import io
import zipfile

import filetype

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
EXTENSIONS = {
    "application/pdf": ".pdf", DOCX: ".docx", XLSX: ".xlsx", PPTX: ".pptx",
    "application/msword": ".doc", "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-powerpoint": ".ppt", "image/jpeg": ".jpg", "image/png": ".png",
    "image/gif": ".gif", "image/bmp": ".bmp", "image/webp": ".webp", "image/heic": ".heic",
    "video/mp4": ".mp4", "video/quicktime": ".mov", "application/zip": ".zip",
    "application/x-rar-compressed": ".rar", "application/x-7z-compressed": ".7z",
    "text/plain": ".txt", "text/html": ".html", "text/csv": ".csv", "message/rfc822": ".eml",
}


def sniff_type(data: bytes, declared: str = "application/octet-stream") -> str:
    """Return the MIME type the bytes really are; `declared` only refines text types."""
    if not data:
        return "application/x-empty"
    if data.startswith(OLE_MAGIC):
        return _ole_type(data)
    if data.startswith(b"PK\x03\x04"):
        return _zip_type(data)
    kind = filetype.guess(data[:8192])
    if kind is not None:
        return kind.mime
    return _text_type(data, declared)


def _ole_type(data: bytes) -> str:
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        streams = {"/".join(s) for s in ole.listdir()}
        ole.close()
    except Exception:  # a truncated or damaged container: still an OLE file
        return "application/x-ole-storage"
    if "WordDocument" in streams:
        return "application/msword"
    if "Workbook" in streams or "Book" in streams:
        return "application/vnd.ms-excel"
    if "PowerPoint Document" in streams:
        return "application/vnd.ms-powerpoint"
    if "EncryptedPackage" in streams:
        return "application/x-encrypted-office"
    return "application/x-ole-storage"


def _zip_type(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            # ODF's mimetype entry is a few dozen bytes; a bigger one is not read (a zip bomb's place).
            small = "mimetype" in names and zf.getinfo("mimetype").file_size <= 256
            mimetype = zf.read("mimetype").decode("ascii", "replace").strip() if small else ""
    except Exception:  # damaged zip: say what the magic says
        return "application/zip"
    if mimetype:
        return mimetype
    if any(n.startswith("word/") for n in names):
        return DOCX
    if any(n.startswith("xl/") for n in names):
        return XLSX
    if any(n.startswith("ppt/") for n in names):
        return PPTX
    return "application/zip"


def _text_type(data: bytes, declared: str) -> str:
    sample = data[:65536]
    if b"\x00" in sample:
        return "application/octet-stream"
    if not _decodes(sample):
        return "application/octet-stream"
    head = sample[:2048].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512]:
        return "text/html"
    if head.startswith(b"{\\rtf"):
        return "application/rtf"
    if head.startswith(b"%pdf"):
        return "application/pdf"
    declared = (declared or "").lower()
    if declared.startswith("text/") or declared in ("application/csv", "application/vnd.ms-excel"):
        return "text/csv" if "csv" in declared else (declared if declared.startswith("text/") else "text/plain")
    return "text/plain"


def _decodes(sample: bytes) -> bool:
    for codec in ("utf-8", "gb18030"):
        try:
            sample.decode(codec)
            return True
        except UnicodeDecodeError as exc:
            # A multibyte character cut at the sample's end is still text.
            if exc.start >= len(sample) - 4:
                return True
    return False


def extension_for(content_type: str) -> str:
    return EXTENSIONS.get(content_type, ".bin")
