"""Can an attachment be opened? The cases in tests/cases/attachments.yaml, and no false alarms
on the real office files and mail attachments among the fixtures."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import yaml

from mailbot.read.parse import parse
from mailbot.read.sniff import sniff_type
from mailbot.read.usable import Problem, check_attachment, describe, display_name

TESTS = Path(__file__).resolve().parents[1]
HOSTILE = TESTS / "mail" / "hostile"
CASES = yaml.safe_load((TESTS / "cases" / "attachments.yaml").read_text(encoding="utf-8"))
# Files among the forms fixtures that are meant to be locked, and why.
LOCKED_FORMS = {"0019-guanzhu-password.pdf": "encrypted"}


# ---- builders: shapes no tool on this machine writes, from the specs ---------------------

def _xls_with_filepass(filepass: bytes) -> bytes:
    """The forms fixture's .xls with a FILEPASS record put right after its BOF (same stream size)."""
    import olefile

    buf = io.BytesIO((TESTS / "forms" / "0007-guanzhu.xls").read_bytes())
    with olefile.OleFileIO(buf, write_mode=True) as ole:
        book = ole.openstream("Workbook").read()
        bof_end = 4 + struct.unpack_from("<H", book, 2)[0]
        record = struct.pack("<HH", 0x002F, len(filepass)) + filepass
        ole.write_stream("Workbook", (book[:bof_end] + record + book[bof_end:])[:len(book)])
    return buf.getvalue()


def _xor_verifier(password: str) -> int:
    """MS-OFFCRYPTO 2.3.7.1 CreatePasswordVerifier_Method1, step by step as the spec writes it."""
    data = bytes([len(password)]) + password.encode("latin-1")
    verifier = 0
    for byte in data[::-1]:
        intermediate1 = 0 if verifier & 0x4000 == 0 else 1
        intermediate2 = (verifier * 2) & 0x7FFF
        verifier = (intermediate1 | intermediate2) ^ byte
    return verifier ^ 0xCE4B


def _xls_xor(password: str) -> bytes:
    return _xls_with_filepass(struct.pack("<HHH", 0, 0x1234, _xor_verifier(password)))


def _xls_cryptoapi(password: str) -> bytes:
    """Excel 2003's RC4 CryptoAPI FILEPASS (MS-OFFCRYPTO 2.3.5), verifier made with cryptography's ARC4."""
    arc4 = pytest.importorskip("cryptography.hazmat.decrepit.ciphers.algorithms").ARC4
    from cryptography.hazmat.primitives.ciphers import Cipher

    salt, verifier = bytes(range(16)), bytes(range(100, 116))
    h0 = hashlib.sha1(salt + password.encode("utf-16-le")).digest()
    key = hashlib.sha1(h0 + struct.pack("<I", 0)).digest()[:16]
    encrypted = Cipher(arc4(key), None).encryptor().update(verifier + hashlib.sha1(verifier).digest())
    csp = "Microsoft Enhanced Cryptographic Provider v1.0\0".encode("utf-16-le")
    header = struct.pack("<IIIIIIII", 0x04, 0, 0x6801, 0x8004, 128, 1, 0, 0) + csp
    info = struct.pack("<HHII", 2, 2, 0x04, len(header)) + header
    info += struct.pack("<I", 16) + salt + encrypted[:16] + struct.pack("<I", 20) + encrypted[16:]
    return _xls_with_filepass(struct.pack("<H", 1) + info)


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name, (2026, 3, 1, 0, 0, 0)), content)
    return buf.getvalue()


def _stored_entry_claims_more() -> bytes:
    data = bytearray(_zip({"a.txt": b"0123456789"}, zipfile.ZIP_STORED))
    struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 10_000)  # uncompressed size
    return bytes(data)


def _pdf_linearized_cut() -> bytes:
    head = b"%PDF-1.5\n1 0 obj\n<< /Linearized 1 /L 48213 /H [ 600 150 ] /O 3 /E 9000 /N 4 /T 47900 >>\nendobj\n"
    first_page_trailer = b"trailer\n<< /Size 9 /Root 2 0 R >>\nstartxref\n0\n%%EOF\n"
    return head + first_page_trailer + b"2 0 obj\n<< /Type /Catalog >>\nendobj\n" + bytes(500)


def _jpeg_with_trailer() -> bytes:
    return (HOSTILE / "0021-jpeg-named-png.png").read_bytes() + b"MotionPhoto_Data" + bytes(range(256)) * 32


BUILDERS = {
    "xls_xor_filepass": lambda: _xls_xor("secret"),
    "xls_xor_filepass_default": lambda: _xls_xor("VelvetSweatshop"),
    "xls_cryptoapi_filepass": lambda: _xls_cryptoapi("secret"),
    "xls_cryptoapi_filepass_default": lambda: _xls_cryptoapi("VelvetSweatshop"),
    "zip_of_12_files": lambda: _zip({f"{i}.txt": b"x" for i in range(12)}),
    "zip_stored_entry_claims_more": _stored_entry_claims_more,
    "pdf_linearized_cut": _pdf_linearized_cut,
    "jpeg_with_trailer": _jpeg_with_trailer,
}


def case_bytes(case: dict) -> tuple[str, bytes]:
    """The (name sent, bytes) of one row."""
    if "file" in case:
        path = TESTS / case["file"]
        return case.get("name", path.name), path.read_bytes()
    for key, encoding in (("text", "utf-8"), ("gbk", "gbk"), ("utf16", "utf-16")):
        if key in case:
            return case["name"], case[key].encode(encoding)
    return case.get("name", case["build"]), BUILDERS[case["build"]]()


def case_id(case: dict) -> str:
    return f"{case.get('name') or Path(case.get('file', case.get('build', ''))).name}-{case['expect']}"


# ---- the table ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES["checks"], ids=[case_id(c) for c in CASES["checks"]])
def test_check_attachment(case):
    name, data = case_bytes(case)
    problem = check_attachment(name, case.get("type", "application/octet-stream"), data, **case.get("limits", {}))
    assert (problem.code if problem else None) == case["expect"], case["proves"]
    if problem:
        assert_polite(problem)


@pytest.mark.parametrize("case", CASES["display_names"], ids=[c["proves"] for c in CASES["display_names"]])
def test_display_name(case):
    assert display_name(case["name"], case.get("index", 1)) == case["expect"]


def assert_polite(problem: Problem) -> None:
    """A whole Chinese sentence or two that follows the file's name, asking for something doable."""
    assert problem.message.endswith("。") and "请" in problem.message
    assert not problem.message.startswith(("附件", "文件"))  # describe() puts the name first


def test_describe_names_the_file_safely():
    problem = check_attachment("../../x.docx", "", b"")
    assert describe("../../x\u202e.docx", problem) == "附件“x.docx”是空文件（0 字节），可能添加附件时没有成功，请重新添加后再发送。"


def test_every_hostile_fixture_has_a_row():
    used = {Path(c["file"]).name for c in CASES["checks"] if "file" in c}
    assert {p.name for p in HOSTILE.iterdir()} - used == set()


# ---- no false alarms on real files ---------------------------------------------------------

FORMS = sorted(p for p in (TESTS / "forms").iterdir() if p.suffix != ".py")


@pytest.mark.parametrize("path", FORMS, ids=[p.name for p in FORMS])
def test_forms_fixtures_open(path):
    data = path.read_bytes()
    for declared in ("application/octet-stream", sniff_type(data)):
        problem = check_attachment(path.name, declared, data)
        assert (problem.code if problem else None) == LOCKED_FORMS.get(path.name)


MAILS = sorted((TESTS / "mail").glob("*.eml"))


@pytest.mark.parametrize("path", MAILS, ids=[p.stem for p in MAILS])
def test_mail_attachments_open(path):
    for att in parse(path.read_bytes()).attachments:
        assert check_attachment(att.filename, att.declared_type, att.data) is None, att.filename


# ---- never inflate ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["0026-odf-mimetype-entry-bomb.odt", "0011-zip-bomb-256mib-of-zeros.zip",
                                  "0012-zip-bomb-ratio-inside-docx.docx", "0014-zip-overlapping-entries.zip"])
def test_bombs_are_judged_without_inflating(name):
    data = (HOSTILE / name).read_bytes()
    tracemalloc.start()
    try:
        sniff_type(data)
        check_attachment(name, "application/zip", data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


# ---- never crash -----------------------------------------------------------------------------

SMALL = [p for p in sorted(HOSTILE.iterdir()) + FORMS if p.stat().st_size < 100_000]


@pytest.mark.parametrize("path", SMALL, ids=[p.name for p in SMALL])
def test_cut_or_mangled_files_give_an_answer_not_an_exception(path):
    import random

    data, rng = path.read_bytes(), random.Random(path.name)
    variants = [data[:rng.randrange(max(1, len(data)))] for _ in range(10)]
    for _ in range(20):
        mangled = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            if mangled:
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        variants.append(bytes(mangled))
    for variant in variants:
        problem = check_attachment(path.name, "application/octet-stream", variant)
        assert problem is None or isinstance(problem, Problem)
