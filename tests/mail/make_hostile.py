#!/usr/bin/env python3
"""Build the hostile attachment fixtures in tests/mail/hostile/, each named after what it proves.

How each kind is made (nothing here uses mailbot: the checks in mailbot/read/usable.py are
tested against files made by other software or written byte by byte from the formats' specs):

- Encrypted .docx/.xlsx: a form from tests/forms/ encrypted by msoffcrypto-tool (ECMA-376
  Agile encryption in an OLE container, as Word, Excel and WPS write "加密文档"), with its
  random salts and keys replaced by a fixed byte stream so the output is deterministic.
  msoffcrypto-tool is not a mailbot dependency: `pip install --target DIR msoffcrypto-tool`
  and pass `--msoffcrypto DIR` (LibreOffice 7.4 could not be made to write encrypted OOXML
  headless: its EncryptionData/OOXPassword store fails inside a Basic macro).
- Encrypted .doc/.xls (and an .xls under Excel's default password "VelvetSweatshop"):
  LibreOffice saves a form from tests/forms/ with a password, through a Basic macro in a
  throwaway profile (`Password` in the store arguments; RC4 as Word/Excel 97 write it).
  An encrypted .odt the same way (ODF encrypts inside the package; its manifest says so).
- Encrypted PDF and a permissions-only PDF: LibreOffice's PDF export with JSON filter options.
  LibreOffice draws random salts and dates: these change on every run, so files made by other
  software are kept when present and remade only with --tools (or when named in --only).
- PDFs under each revision of the standard security handler (R2 RC4-40, R4 AES-128, R5 and R6
  AES-256), with a user password and with an owner password only: qpdf (apt-get install qpdf)
  with its test options --static-id and --static-aes-iv; the AES-256 salts stay random.
- Everything else (zip encryption, zip bombs, lying and overlapping central directories,
  truncations, mismatched content) is written by this script with the stdlib and Pillow:
  deterministic.

    .venv/bin/python tests/mail/make_hostile.py        # rewrite the deterministic ones
    .venv/bin/python tests/mail/make_hostile.py --tools --msoffcrypto /tmp/msoff   # all of them
    .venv/bin/python tests/mail/make_hostile.py --only 0011-zip-bomb-256mib-of-zeros.zip
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "hostile"
FORMS = HERE.parent / "forms"
PASSWORD = "secret"
DATE = (2026, 3, 1, 9, 30, 0)
MIB = 2**20


# ---- encrypted office files (other software) ------------------------------------------------

def msoffcrypto_encrypt(plain: bytes, lib: Path) -> bytes:
    """ECMA-376 Agile encryption by msoffcrypto-tool, with a fixed stream for its random bytes."""
    sys.path.insert(0, str(lib))
    import msoffcrypto.method.container.ecma376_encrypted as container
    import msoffcrypto.method.ecma376_agile as agile
    from msoffcrypto.format.ooxml import OOXMLFile

    stream = _fixed_stream(b"mailbot hostile fixtures")
    agile._random_buffer = lambda size: stream(size)
    fixed = container.datetime2filetime(datetime(*DATE))
    container.datetime2filetime = lambda _now: fixed  # the OLE directory's timestamps
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt(PASSWORD, out)
    return out.getvalue()


def _fixed_stream(seed: bytes):
    counter = [0]

    def take(size: int) -> bytes:
        chunks = b""
        while len(chunks) < size:
            counter[0] += 1
            chunks += hashlib.sha256(seed + counter[0].to_bytes(4, "little")).digest()
        return chunks[:size]
    return take


MACRO = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE script:module PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">
<script:module xmlns:script="http://openoffice.org/2000/script" script:name="Module1" script:language="StarBasic">
Sub SaveWithPassword
  Dim load(0) As New com.sun.star.beans.PropertyValue
  load(0).Name = "Hidden"
  load(0).Value = True
  doc = StarDesktop.loadComponentFromURL(ConvertToURL(Environ("LO_SRC")), "_blank", 0, load())
  Dim store(1) As New com.sun.star.beans.PropertyValue
  store(0).Name = "FilterName"
  store(0).Value = Environ("LO_FILTER")
  store(1).Name = "Password"
  store(1).Value = Environ("LO_PASSWORD")
  doc.storeToURL(ConvertToURL(Environ("LO_DST")), store())
  doc.close(True)
End Sub
</script:module>
"""
LOCKED_PDF = ('pdf:writer_pdf_Export:{"EncryptFile":{"type":"boolean","value":"true"},'
              '"DocumentOpenPassword":{"type":"string","value":"secret"}}')
PERMISSIONS_PDF = ('pdf:writer_pdf_Export:{"RestrictPermissions":{"type":"boolean","value":"true"},'
                   '"PermissionPassword":{"type":"string","value":"owner"},'
                   '"EnableCopyingOfContent":{"type":"boolean","value":"false"},'
                   '"Changes":{"type":"long","value":"0"}}')


class LibreOffice:
    """soffice --headless in a throwaway profile that holds one Basic macro."""

    def __init__(self, work: Path):
        self.soffice = shutil.which("soffice") or shutil.which("libreoffice")
        if not self.soffice:
            sys.exit("make_hostile: LibreOffice (soffice) is needed")
        self.work = work
        self.profile = (work / "profile").as_uri()
        self.env = {**os.environ, "HOME": str(work)}
        self._run(["--convert-to", "txt", "--outdir", str(work / "warmup"), str(self._text("warmup.txt"))])
        basic = work / "profile" / "user" / "basic" / "Standard"
        (basic / "Module1.xba").write_text(MACRO, encoding="utf-8")

    def _text(self, name: str) -> Path:
        path = self.work / name
        path.write_text("hello\n", encoding="utf-8")
        return path

    def _run(self, args: list[str], env: dict | None = None) -> None:
        cmd = [self.soffice, f"-env:UserInstallation={self.profile}", "--headless", "--norestore", *args]
        # A failing macro can leave soffice waiting forever: time-box it and end its group.
        proc = subprocess.Popen(cmd, env=env or self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

    def save_with_password(self, plain: bytes, suffix: str, filter_name: str, password: str) -> bytes:
        src, dst = self.work / f"src{suffix}", self.work / f"dst{suffix}"
        src.write_bytes(plain)
        dst.unlink(missing_ok=True)
        env = {**self.env, "LO_SRC": str(src), "LO_DST": str(dst), "LO_FILTER": filter_name,
               "LO_PASSWORD": password}
        self._run(["vnd.sun.star.script:Standard.Module1.SaveWithPassword?language=Basic&location=application"],
                  env)
        return dst.read_bytes()

    def to_pdf(self, plain: bytes, target: str) -> bytes:
        src, out = self.work / "src.docx", self.work / "pdf"
        src.write_bytes(plain)
        shutil.rmtree(out, ignore_errors=True)
        self._run(["--convert-to", target, "--outdir", str(out), str(src)])
        return (out / "src.pdf").read_bytes()


def qpdf_encrypt(plain: bytes, user: str, bits: str, *extra: str) -> bytes:
    """qpdf's --encrypt; --static-id and --static-aes-iv (qpdf's test options) fix its random bytes."""
    with tempfile.TemporaryDirectory(prefix="make-hostile-qpdf-") as tmp:
        src, dst = Path(tmp, "in.pdf"), Path(tmp, "out.pdf")
        src.write_bytes(plain)
        subprocess.run(["qpdf", "--static-id", "--static-aes-iv", "--allow-weak-crypto", "--encrypt", user, "owner",
                        bits, *extra, "--", str(src), str(dst)], check=True, timeout=60)
        return dst.read_bytes()


PDF_REVISIONS = {"rc4-40-r2": ["40"], "aes128-r4": ["128", "--use-aes=y"], "aes256-r5": ["256", "--force-R5"],
                 "aes256-r6": ["256"]}


def qpdf_fixtures() -> dict[str, bytes]:
    """PDFs under each standard security handler revision, locked and permissions-only."""
    if not shutil.which("qpdf"):
        sys.exit("make_hostile: qpdf is needed (apt-get install qpdf)")
    plain = minimal_pdf()
    files = {}
    for n, (label, (bits, *extra)) in enumerate(PDF_REVISIONS.items()):
        files[f"{28 + 2 * n:04d}-encrypted-pdf-{label}.pdf"] = qpdf_encrypt(plain, PASSWORD, bits, *extra)
        files[f"{29 + 2 * n:04d}-pdf-{label}-owner-password-only.pdf"] = qpdf_encrypt(plain, "", bits, *extra)
    return files


# ---- zips, written byte by byte ----------------------------------------------------------

def zipcrypto_zip(name: str, plain: bytes) -> bytes:
    """One stored entry under traditional PKWARE encryption (APPNOTE 6.1), password PASSWORD."""
    crc = zlib.crc32(plain)
    keys = _ZipKeys(PASSWORD.encode())
    header = bytes(random.Random(6).randrange(256) for _ in range(11)) + bytes([crc >> 24])
    body = keys.encrypt(header + plain)
    raw = name.encode("utf-8")
    flags = 0x1 | 0x800  # encrypted, UTF-8 name
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0x4B2E, 0x5C61, crc, len(body), len(plain),
                        len(raw), 0) + raw
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, 0x4B2E, 0x5C61, crc, len(body),
                          len(plain), len(raw), 0, 0, 0, 0, 0, 0) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    return local + body + central + end


class _ZipKeys:
    TABLE = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        TABLE[i] = c

    def __init__(self, password: bytes):
        self.k = [0x12345678, 0x23456789, 0x34567890]
        for b in password:
            self._update(b)

    def _crc(self, crc: int, b: int) -> int:
        return (crc >> 8) ^ self.TABLE[(crc ^ b) & 0xFF]

    def _update(self, b: int) -> None:
        k = self.k
        k[0] = self._crc(k[0], b)
        k[1] = ((k[1] + (k[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k[2] = self._crc(k[2], k[1] >> 24)

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            t = (self.k[2] | 2) & 0xFFFF
            out.append(b ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            self._update(b)
        return bytes(out)


def zeros_zip(entries: list[tuple[str, bytes | int]]) -> bytes:
    """A deflated zip; an int entry is that many zero bytes, streamed so memory stays small."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, content in entries:
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            if isinstance(content, int):
                with zf.open(info, "w", force_zip64=content >= 2**31) as out:
                    block = bytes(MIB)
                    for _ in range(content // MIB):
                        out.write(block)
            else:
                zf.writestr(info, content)
    return buf.getvalue()


def docx_plus(plain_docx: bytes, extra: list[tuple[str, bytes | int]]) -> bytes:
    """A real .docx with extra parts added (e.g. 20 MiB of zeros as an 'image')."""
    with zipfile.ZipFile(io.BytesIO(plain_docx)) as zf:
        parts = [(i.filename, zf.read(i)) for i in zf.infolist()]
    return zeros_zip(parts + extra)


def lying_central_directory(declared: int) -> bytes:
    """A small honest zip whose central directory then claims `declared` bytes uncompressed."""
    data = bytearray(zeros_zip([("报告.txt", "年度工作报告".encode() * 20)]))
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, declared)
    return bytes(data)


def overlapping_entries(copies: int) -> bytes:
    """Several central directory entries sharing one local file's data (a "non-recursive" bomb)."""
    kernel = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = kernel.compress(bytes(4 * MIB)) + kernel.flush()
    crc, size = zlib.crc32(bytes(4 * MIB)), 4 * MIB
    name = b"0.txt"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0x4B2E, 0x5C61, crc, len(body), size,
                        len(name), 0) + name
    central = b"".join(
        struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0x4B2E, 0x5C61, crc, len(body), size,
                    len(n), 0, 0, 0, 0, 0, 0) + n
        for n in (f"{i}.txt".encode() for i in range(copies)))
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies, len(central), len(local) + len(body), 0)
    return local + body + central + end


# ---- images and PDFs -----------------------------------------------------------------------

def image(fmt: str) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (96, 64))
    img.putdata([((x * 5) % 256, (y * 7) % 256, ((x + y) * 3) % 256) for y in range(64) for x in range(96)])
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 80} if fmt == "JPEG" else {}))
    return out.getvalue()


def minimal_pdf(text: str = "Hello") -> bytes:
    """A one-page PDF with a correct xref table, written by hand."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# ---- the fixtures ----------------------------------------------------------------------------

def pure_fixtures() -> dict[str, bytes]:
    """The deterministic ones: only this script and Pillow."""
    docx = (FORMS / "0012-unknown-table.docx").read_bytes()
    doc = (FORMS / "0003-guanzhu.doc").read_bytes()
    jpeg, png = image("JPEG"), image("PNG")
    return {
        "0007-encrypted-zip-entry.zip": zipcrypto_zip("报名表.docx", docx),
        "0008-html-named-docx.docx": ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>报告</title>'
                                      '</head><body><p>关于开展科普日活动的报告</p></body></html>').encode(),
        "0009-random-bytes-named-pdf.pdf": random.Random(9).randbytes(4096),
        "0010-random-bytes-named-docx.docx": random.Random(10).randbytes(4096),
        "0011-zip-bomb-256mib-of-zeros.zip": zeros_zip([("报告.txt", 256 * MIB)]),
        "0012-zip-bomb-ratio-inside-docx.docx": docx_plus(docx, [("word/media/image1.png", 20 * MIB)]),
        "0013-zip-central-directory-claims-3gib.zip": lying_central_directory(3 * 2**30),
        "0014-zip-overlapping-entries.zip": overlapping_entries(64),
        "0015-empty.docx": b"",
        "0016-truncated-docx-no-central-directory.docx": docx[: len(docx) * 2 // 3],
        "0017-truncated-pdf-no-eof.pdf": minimal_pdf()[:-40],
        "0018-truncated-jpeg-no-end-marker.jpg": jpeg[: len(jpeg) * 2 // 3],
        "0019-truncated-png-no-iend.png": png[:-40],
        "0020-truncated-doc-ole-cut.doc": doc[:5000],
        "0021-jpeg-named-png.png": jpeg,
        "0022-ordinary-zip-of-forms.zip": zeros_zip([("表一.docx", docx), ("表二.doc", doc)]),
        "0023-ordinary-pdf.pdf": minimal_pdf(),
        "0024-pdf-garbage-after-eof.pdf": minimal_pdf() + b"\r\n\x00\x00" + b" " * 300,
        "0026-odf-mimetype-entry-bomb.odt": zeros_zip([("mimetype", 64 * MIB), ("content.xml", b"<x/>")]),
    }


def office_fixtures(work: Path, msoffcrypto: Path | None) -> dict[str, bytes]:
    """The ones made by LibreOffice and msoffcrypto-tool (see the module docstring)."""
    office = LibreOffice(work)
    docx = (FORMS / "0012-unknown-table.docx").read_bytes()
    files = {
        "0003-encrypted-doc.doc": office.save_with_password(
            (FORMS / "0003-guanzhu.doc").read_bytes(), ".doc", "MS Word 97", PASSWORD),
        "0004-encrypted-xls.xls": office.save_with_password(
            (FORMS / "0007-guanzhu.xls").read_bytes(), ".xls", "MS Excel 97", PASSWORD),
        "0005-xls-default-password-opens-without-asking.xls": office.save_with_password(
            (FORMS / "0007-guanzhu.xls").read_bytes(), ".xls", "MS Excel 97", "VelvetSweatshop"),
        "0006-encrypted-pdf.pdf": office.to_pdf(docx, LOCKED_PDF),
        "0027-encrypted-odt.odt": office.save_with_password(
            (FORMS / "0003-guanzhu.doc").read_bytes(), ".odt", "writer8", PASSWORD),
        "0025-pdf-permissions-password-only.pdf": office.to_pdf(docx, PERMISSIONS_PDF),
    }
    if msoffcrypto:
        files["0001-encrypted-docx.docx"] = msoffcrypto_encrypt(docx, msoffcrypto)
        files["0002-encrypted-xlsx.xlsx"] = msoffcrypto_encrypt((FORMS / "0005-guanzhu.xlsx").read_bytes(),
                                                                 msoffcrypto)
    return files


# Made by other software: kept when present (LibreOffice and AES-256 salts are random), remade
# with --tools. The rest is remade on every run, byte for byte the same.
TOOL_MADE = [
    "0001-encrypted-docx.docx", "0002-encrypted-xlsx.xlsx", "0003-encrypted-doc.doc", "0004-encrypted-xls.xls",
    "0005-xls-default-password-opens-without-asking.xls", "0006-encrypted-pdf.pdf",
    "0025-pdf-permissions-password-only.pdf", "0027-encrypted-odt.odt",
    *(name for n, label in enumerate(PDF_REVISIONS) for name in (
        f"{28 + 2 * n:04d}-encrypted-pdf-{label}.pdf", f"{29 + 2 * n:04d}-pdf-{label}-owner-password-only.pdf")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="rewrite only these fixtures")
    parser.add_argument("--tools", action="store_true", help="remake the files made by other software too")
    parser.add_argument("--msoffcrypto", type=Path, help="a folder holding msoffcrypto-tool (pip --target)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    files = pure_fixtures()
    wanted = set(args.only or files.keys() | set(TOOL_MADE))
    unknown = wanted - files.keys() - set(TOOL_MADE)
    if unknown:
        sys.exit(f"make_hostile: no such fixture: {', '.join(sorted(unknown))}")
    remake = {n for n in TOOL_MADE if n in wanted and (args.tools or args.only or not (OUT / n).exists())}
    if remake:
        files |= qpdf_fixtures()
        with tempfile.TemporaryDirectory(prefix="make-hostile-") as tmp:
            files |= office_fixtures(Path(tmp), args.msoffcrypto)
    for name in sorted(wanted & (files.keys() - set(TOOL_MADE)) | remake):
        if name not in files:
            print(f"   (kept)  {name}: pass --msoffcrypto DIR to remake it")
            continue
        (OUT / name).write_bytes(files[name])
        print(f"{len(files[name]):>9}  {name}")


if __name__ == "__main__":
    main()
