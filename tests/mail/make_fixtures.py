#!/usr/bin/env python3
"""Generate the parser fixtures in this folder, byte by byte.

Every .eml here is written by this script, so the odd bytes (raw GBK in a header,
a character split across two encoded words, a mislabelled charset ...) are exact,
deterministic and reviewable. Nothing here uses mailbot: the expected values in
tests/cases/parse.yaml are worked out from what this script writes, never from the
parser's output.

    .venv/bin/python tests/mail/make_fixtures.py          # (re)write the fixtures
    .venv/bin/python tests/mail/make_fixtures.py --check  # fail if a fixture differs

After writing, it prints the sha256 of each file (the `key` of a message without
Message-ID) and the size and sha256 of every attachment payload it embedded, for the
YAML. The printed values depend only on the bytes below (and, for the .docx, on the
deflate implementation: see minimal_docx).

Names, units and addresses are invented; the mail shapes follow the real messages
described in ../../../shared/CHINESE-MAIL.md (sections 2 and 3).
"""

from __future__ import annotations

import base64
import hashlib
import io
import quopri
import struct
import sys
import zipfile
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"
LF = b"\n"

FIXTURES: dict[str, bytes] = {}
PAYLOADS: dict[str, list[tuple[str, bytes]]] = {}  # fixture -> [(what, bytes)] in MIME order


# --- small helpers -------------------------------------------------------------------


def fixture(name: str):
    def register(fn):
        fn.fixture_name = name
        _ORDER.append((name, fn))
        return fn
    return register


_ORDER: list[tuple[str, object]] = []
_CURRENT: list[str] = []


def payload(what: str, data: bytes) -> bytes:
    """Remember an attachment payload (for the printed size/sha256) and return it."""
    PAYLOADS.setdefault(_CURRENT[-1], []).append((what, data))
    return data


def ascii_(s: str | bytes) -> bytes:
    return s if isinstance(s, bytes) else s.encode("ascii")


def join(lines, eol=CRLF) -> bytes:
    return eol.join(ascii_(line) for line in lines)


def text_lines(text: str, codec: str, eol=CRLF) -> bytes:
    """Body text written in `codec`, with `eol` line ends and a final line end."""
    return eol.join(line.encode(codec) for line in text.split("\n")) + eol


def b64(data: bytes, eol=CRLF) -> bytes:
    """Base64 in 76-character lines, each ended by `eol`."""
    enc = base64.b64encode(data)
    return b"".join(enc[i:i + 76] + eol for i in range(0, len(enc), 76))


def qp(text: str, codec: str, eol=CRLF) -> bytes:
    """Quoted-printable body; soft line breaks use `eol` too."""
    out = []
    for line in text.split("\n"):
        enc = quopri.encodestring(line.encode(codec)).rstrip(b"\n")
        out.append(enc.replace(b"=\n", b"=" + eol))
    return eol.join(out) + eol


def ew(data: bytes | str, charset: str, mode: str = "B", codec: str | None = None) -> str:
    """One RFC 2047 encoded word over exactly these bytes."""
    if isinstance(data, str):
        data = data.encode(codec or charset)
    if mode.upper() == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="
    out = []
    for b in data:
        c = chr(b)
        if b == 0x20:
            out.append("_")
        elif 0x21 <= b <= 0x7E and c not in '=?_"(),.:;<>@[\\]':
            out.append(c)
        else:
            out.append(f"={b:02X}")
    return f"=?{charset}?{mode}?{''.join(out)}?="


def ew_split(text: str, charset: str, mode: str, codec: str, per_word: int) -> list[str]:
    """Encoded words of at most `per_word` characters each, split between characters."""
    return [ew(text[i:i + per_word], charset, mode, codec) for i in range(0, len(text), per_word)]


def pct(data: bytes) -> str:
    """RFC 2231 %-encoding of every non-attribute-char byte."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~"
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in data)


def rfc2231(param: str, data: bytes, charset: str, cuts: list[int], lang: str = "") -> list[str]:
    """`param*0*=charset'lang'...; param*1*=...` continuation lines, cut at byte offsets
    `cuts` (a cut may fall inside a multibyte character: decoders must join first)."""
    edges = [0, *cuts, len(data)]
    pieces = [data[a:b] for a, b in zip(edges, edges[1:])]
    out = []
    for i, piece in enumerate(pieces):
        value = (f"{charset}'{lang}'" if i == 0 else "") + pct(piece)
        out.append(f" {param}*{i}*={value}" + (";" if i < len(pieces) - 1 else ""))
    return out


def rfc_date(y, mo, d, h, mi, s, offset="+0800") -> str:
    """An RFC 5322 date with the right weekday for that calendar day."""
    wd = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][datetime(y, mo, d).weekday()]
    mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][mo - 1]
    return f"{wd}, {d:02d} {mon} {y} {h:02d}:{mi:02d}:{s:02d}" + (f" {offset}" if offset else "")


def part(headers: list, body: bytes, eol=CRLF) -> bytes:
    return join(headers, eol) + eol + eol + body


def multipart(boundary: str, parts: list[bytes], eol=CRLF, preamble: str | None = None) -> bytes:
    out = b""
    if preamble:
        out += ascii_(preamble) + eol + eol
    for p in parts:
        if not p.endswith(eol):
            p += eol
        out += b"--" + ascii_(boundary) + eol + p
    return out + b"--" + ascii_(boundary) + b"--" + eol


# --- binary payloads ---------------------------------------------------------------------


def tiny_pdf(label: str, pad: int = 0) -> bytes:
    """A minimal valid one-page PDF (correct xref offsets). `pad` adds an unreferenced
    binary stream of that many deterministic pseudo-random bytes."""
    content = f"BT /F1 16 Tf 24 60 Td ({label}) Tj ET".encode("ascii")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 320 120] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if pad:
        blob = b"".join(hashlib.sha256(b"mailbot-pad-%d" % i).digest() for i in range(pad // 32 + 1))[:pad]
        objs.append(b"<< /Length %d >>\nstream\n" % len(blob) + blob + b"\nendstream")
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def tiny_png(rgb=(0x1F, 0x6F, 0xB5)) -> bytes:
    """A valid 1x1 RGB PNG. The IDAT is a fixed stored-deflate stream (no zlib version drift)."""
    raw = b"\x00" + bytes(rgb)                      # filter byte + one pixel
    adler = zlib.adler32(raw) & 0xFFFFFFFF
    idat = b"\x78\x01" + b"\x01" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def minimal_docx() -> bytes:
    """A real .docx made with python-docx, re-zipped with fixed dates and deflate level 9.

    Deterministic on one zlib; a different deflate implementation (zlib-ng) may produce
    other bytes: then `--check` reports 0026 and its sha256 in parse.yaml must follow."""
    import docx

    doc = docx.Document()
    doc.add_heading("沂水县科协2026年全国科普日活动总结", level=1)
    doc.add_paragraph("今年全国科普日期间，我县共举办科普活动12场，参与群众3000余人次。")
    table = doc.add_table(rows=2, cols=3)
    for cell, value in zip(table.rows[0].cells, ["序号", "单位名称", "关注人数（人）"]):
        cell.text = value
    for cell, value in zip(table.rows[1].cells, ["1", "沂水县科协", "１２３"]):
        cell.text = value
    cp = doc.core_properties
    fixed = datetime(2026, 3, 16, 8, 0, 0, tzinfo=timezone.utc)
    cp.author = "沂水县科协"
    cp.last_modified_by = "沂水县科协"
    cp.title = "科普日活动总结"
    cp.revision = 1
    cp.created = fixed
    cp.modified = fixed
    buf = io.BytesIO()
    doc.save(buf)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=(2026, 3, 16, 8, 0, 0))
            member.external_attr = 0o644 << 16
            dst.writestr(member, src.read(info.filename), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


PDF_LIZHE = tiny_pdf("Li Zhe shiji cailiao")
PDF_TRAINING = tiny_pdf("Zaoyuan winter orchard training")
PDF_SCAN = tiny_pdf("Yishui KX scan 2026-03-18")
PNG = tiny_png()


# --- the fixtures --------------------------------------------------------------------------


@fixture("0001-gb2312-label-gbk-only-chars.eml")
def f0001():
    # Coremail-style message labelled gb2312 throughout, with GBK-only characters
    # (喆 堃 镕 are not in GB2312) in Subject, From name, 8bit body and file name.
    body = ("市科协科普部：\n"
            "　　现报送我县优秀科普志愿者李喆、王堃、张镕同志的事迹材料，详见附件。\n"
            "　　联系人：王堃，电话：0539-2251234。\n"
            "\n"
            "沂水县科协\n"
            "2026年3月16日")
    fname = ew("李喆同志事迹材料.pdf", "gb2312", codec="gbk")
    b = "----=_Part_123456_789012345.1773623565000"
    return part([
        "Received: from ysxkx$163.com ( [223.99.10.21] ) by ajax-webmail-wmsvr101 (Coremail) ;",
        " " + rfc_date(2026, 3, 16, 9, 12, 46),
        "Date: " + rfc_date(2026, 3, 16, 9, 12, 45),
        "From: " + ew("王堃", "gb2312", codec="gbk") + " <ysxkx@163.com>",
        "To: " + ew("市科协科普部", "gb2312", codec="gbk") + " <skxkpb@lykx.gov.cn>",
        "Subject: " + ew("关于报送李喆、王堃、张镕同志科普事迹材料的函", "gb2312", codec="gbk"),
        "X-Priority: 3",
        "X-Mailer: Coremail Webmail Server Version XT5.0.14 build 20230109(dcb5de15)",
        "Content-Type: multipart/mixed; ",
        f'\tboundary="{b}"',
        "MIME-Version: 1.0",
        "Message-ID: <6d2c1a7e.3f21.18e4c2a1b3d.Coremail.ysxkx@163.com>",
    ], multipart(b, [
        part(["Content-Type: text/plain; charset=gb2312", "Content-Transfer-Encoding: 8bit"],
             text_lines(body, "gbk")),
        part([f'Content-Type: application/pdf; name="{fname}"',
              "Content-Transfer-Encoding: base64",
              f'Content-Disposition: attachment; filename="{fname}"'],
             b64(payload("李喆同志事迹材料.pdf", PDF_LIZHE))),
    ]))


@fixture("0002-gb2312-label-gbk-only-chars-base64-body.eml")
def f0002():
    # Single text part, gb2312 label, base64 body with GBK-only characters; Subject in
    # Q encoding (two words split between characters), From name B-encoded.
    body = ("王堃老师：\n"
            "　　您好！《沂水县第十五届青少年科技创新大赛获奖名单》中，张镕同学的作品名称应为"
            "“基于物联网的果园智能灌溉系统”，原名单有误，请予更正。\n"
            "　　谢谢！\n"
            "\n"
            "李喆\n"
            "沂水县科协")
    words = ew_split("关于张镕同学获奖作品名称的更正", "GB2312", "Q", "gbk", 8)
    return part([
        "From: " + ew("李喆", "GB2312", codec="gbk") + " <lizhe@yishui.gov.cn>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + words[0],
        " " + words[1],
        "Date: " + rfc_date(2026, 3, 16, 11, 5, 0),
        "Message-ID: <20260316110500.4F2A1C@yishui.gov.cn>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="GB2312"',
        "Content-Transfer-Encoding: base64",
    ], b64(text_lines(body, "gbk")))


@fixture("0003-raw-8bit-gbk-subject-and-filename.eml")
def f0003():
    # Foxmail-style: Subject and attachment file name as raw 8-bit GBK (no RFC 2047).
    subject = "兰山区科协关注情况统计表（2026年3月）".encode("gbk")
    fname = "关注情况统计表（兰山区）.csv".encode("gbk")
    body = ("您好：\n"
            "附件是兰山区科协关注情况统计表，请查收。\n"
            "\n"
            "lsqkx@126.com")
    csv = "序号,单位名称,关注人数（人）\r\n1,兰山区科协,123\r\n2,兰山区枣园镇科协,45\r\n".encode("gbk")
    b = "----=_001_NextPart231876412345_=----"
    return part([
        "Date: " + rfc_date(2026, 3, 17, 15, 30, 8),
        'From: "lsqkx@126.com" <lsqkx@126.com>',
        "To: skxdxb <skxdxb@lykx.gov.cn>",
        b"Subject: " + subject,
        "X-Priority: 3",
        "X-GUID: 6E2B1D44-8C1A-4F0B-9D6E-2A7C5B3E1F90",
        "X-Has-Attach: yes",
        "X-Mailer: Foxmail 7.2.25.228[cn]",
        "Mime-Version: 1.0",
        "Message-ID: <202603171530082318764@126.com>",
        "Content-Type: multipart/mixed;",
        f'\tboundary="{b}"',
    ], multipart(b, [
        part(['Content-Type: text/plain; charset="GBK"', "Content-Transfer-Encoding: base64"],
             b64(text_lines(body, "gbk"))),
        part([b'Content-Type: text/csv; name="' + fname + b'"',
              "Content-Transfer-Encoding: base64",
              b'Content-Disposition: attachment; filename="' + fname + b'"'],
             b64(payload("关注情况统计表（兰山区）.csv", csv))),
    ], preamble="This is a multi-part message in MIME format."))


@fixture("0004-raw-8bit-utf8-subject-qq.eml")
def f0004():
    # QQ Mail reply: raw 8-bit UTF-8 Subject, quoted encoded-word From name,
    # multipart/alternative (text part wins), QQ's &nbsp; separator, folded References.
    subject = "回复：【回执】沂水县科协稿件已收到（KP-2026-0042）".encode("utf-8")
    text = ("收到，谢谢！\n"
            "\n"
            "\n"
            "\n"
            "------------------&nbsp;原始邮件&nbsp;------------------\n"
            "发件人: \"临沂市科协科普部\"<skxkpb@lykx.gov.cn&gt;;\n"
            "发送时间:&nbsp;2026年3月16日(星期一) 上午9:55\n"
            "收件人:&nbsp;\"王堃\"<2851234567@qq.com&gt;;\n"
            "\n"
            "主题:&nbsp;【回执】沂水县科协稿件已收到（KP-2026-0042）\n"
            "\n"
            "\n"
            "\n"
            "王堃 您好：\n"
            "您报送的稿件《沂水县科普大篷车进乡村》已收到，编号 KP-2026-0042。\n"
            "【临沂市科协】")
    html = ('<meta http-equiv="Content-Type" content="text/html; charset=utf-8"><div>收到，谢谢！</div>'
            '<div><br></div><div><br></div><div style="font-size: 12px;font-family: Arial Narrow;'
            'padding:2px 0 2px 0;">------------------&nbsp;原始邮件&nbsp;------------------</div>'
            '<div style="font-size: 12px;background:#efefef;padding:8px;"><div><b>发件人:</b>&nbsp;'
            '"临沂市科协科普部"&lt;skxkpb@lykx.gov.cn&gt;;</div></div><div>王堃 您好：</div>'
            '<div>您报送的稿件《沂水县科普大篷车进乡村》已收到，编号 KP-2026-0042。</div><div>【临沂市科协】</div>')
    b = "----=_NextPart_65F5A0C1_0B8D5E28_1A2B3C4D"
    return part([
        "X-QQ-mid: xmsezb12-1t1773626591t3a7b9c1d",
        "X-QQ-XMAILINFO: NbR4Tb4J5TnBSx1b3o4VNr8aGNAXc7eFQA==",
        'From: "' + ew("王堃", "utf-8") + '" <2851234567@qq.com>',
        'To: "' + ew("skxkpb", "utf-8") + '" <skxkpb@lykx.gov.cn>',
        b"Subject: " + subject,
        "Mime-Version: 1.0",
        'Content-Type: multipart/alternative;',
        f'\tboundary="{b}"',
        "Content-Transfer-Encoding: 8Bit",
        "Date: " + rfc_date(2026, 3, 16, 10, 3, 11),
        "X-Priority: 3",
        "Message-ID: <tencent_6A1F0E2D3C4B5A69788796A5B4C3D2E1F008@qq.com>",
        "In-Reply-To: <20260316015501.7f3a.kp-2026-0042@lykx.gov.cn>",
        "References: <tencent_0F1E2D3C4B5A69788796A5B4C3D2E1F0A509@qq.com>",
        "\t<20260316015501.7f3a.kp-2026-0042@lykx.gov.cn>",
        "X-QQ-MIME: TCMime 1.0 by Tencent",
        "X-Mailer: QQMail 2.x",
    ], multipart(b, [
        part(['Content-Type: text/plain;', '\tcharset="utf-8"', "Content-Transfer-Encoding: base64"],
             b64(text_lines(text, "utf-8"))),
        part(['Content-Type: text/html;', '\tcharset="utf-8"', "Content-Transfer-Encoding: base64"],
             b64(html.encode("utf-8"))),
    ], preamble="This is a multi-part message in MIME format."))


@fixture("0005-rfc2231-continuation-gbk.eml")
def f0005():
    # Old Thunderbird zh-CN: RFC 2231 filename*0*/*1*/*2* in GBK; one cut falls inside
    # a two-byte character, so the decoder must join the pieces before decoding.
    name = "临沂市农学会学术年会现场照片（王堃摄）.png"
    data = name.encode("gbk")
    cuts = [15, 29]  # 15 is odd: inside a character
    assert data[:15].decode("gbk", "replace").endswith("\ufffd")
    body = ("各位老师：\n"
            "　　附件为我会学术年会现场照片，请审阅。\n"
            "\n"
            "临沂市农学会\n"
            "李喆")
    b = "------------0A1B2C3D4E5F60718293A4B5"
    return part([
        "Message-ID: <8b1e7c52-3d4f-4a1b-9e2c-5f6a7b8c9d0e@sina.com>",
        "Date: " + rfc_date(2026, 3, 17, 8, 41, 27),
        "MIME-Version: 1.0",
        "User-Agent: Mozilla/5.0 (Windows NT 6.1; rv:52.0) Gecko/20100101",
        " Thunderbird/52.9.1",
        "To: skxxhb@lykx.gov.cn",
        "From: " + ew("临沂市农学会", "GBK") + " <lynxh@sina.com>",
        "Subject: " + ew("临沂市农学会学术年会照片", "GBK"),
        "Content-Type: multipart/mixed;",
        f' boundary="{b}"',
        "Content-Language: zh-CN",
    ], multipart(b, [
        part(["Content-Type: text/plain; charset=GBK; format=flowed", "Content-Transfer-Encoding: 8bit"],
             text_lines(body, "gbk")),
        part(["Content-Type: image/png;", *rfc2231("name", data, "GBK", cuts),
              "Content-Transfer-Encoding: base64",
              "Content-Disposition: attachment;", *rfc2231("filename", data, "GBK", cuts)],
             b64(payload(name, PNG))),
    ], preamble="This is a multi-part message in MIME format."))


@fixture("0006-rfc2231-continuation-utf8.eml")
def f0006():
    # Modern Thunderbird: RFC 2231 filename*0*/*1*/*2* in UTF-8 with a language tag,
    # cut inside a three-byte character.
    name = "兰山区科协关于开展2026年全国科普日活动的总结报告.pdf"
    data = name.encode("utf-8")
    cuts = [40, 80]
    body = ("市科协：\n"
            "　　附件为我区2026年全国科普日活动总结报告，请查收。\n"
            "\n"
            "兰山区科协")
    b = "------------5C6D7E8F9A0B1C2D3E4F5A6B"
    return part([
        "Message-ID: <1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b@lsqkx.org.cn>",
        "Date: " + rfc_date(2026, 9, 25, 16, 2, 9),
        "MIME-Version: 1.0",
        "User-Agent: Mozilla Thunderbird",
        "Content-Language: zh-CN",
        "To: skxkpb@lykx.gov.cn",
        "From: " + ew("兰山区科协", "UTF-8") + " <office@lsqkx.org.cn>",
        "Subject: " + ew("全国科普日活动总结报告（兰山区）", "UTF-8"),
        "Content-Type: multipart/mixed; boundary=\"" + b + "\"",
    ], multipart(b, [
        part(["Content-Type: text/plain; charset=UTF-8; format=flowed", "Content-Transfer-Encoding: 8bit"],
             text_lines(body, "utf-8")),
        part(["Content-Type: application/pdf;", *rfc2231("name", data, "UTF-8", cuts, "zh-CN"),
              "Content-Disposition: attachment;", *rfc2231("filename", data, "UTF-8", cuts, "zh-CN"),
              "Content-Transfer-Encoding: base64"],
             b64(payload(name, tiny_pdf("Lanshan KX science day report")))),
    ], preamble="This is a multi-part message in MIME format."))


@fixture("0007-encoded-word-inside-quotes.eml")
def f0007():
    # "=?gb2312?B?...?=" <zs@qq.com>: an encoded word inside a quoted display name;
    # two To addresses and two Cc addresses (one without a name).
    body = ("各位老师：\n"
            "　　科普基地年度考核材料已发送，请查收。\n"
            "\n"
            "张三\n"
            "临沂市科技馆科普基地")
    return part([
        'From: "' + ew("张三", "gb2312") + '" <zs@qq.com>',
        'To: "' + ew("市科协学会部", "gb2312") + '" <skxxhb@lykx.gov.cn>, "'
        + ew("市科协调宣部", "gb2312") + '"',
        "\t<skxdxb@lykx.gov.cn>",
        "Cc: " + ew("李喆", "utf-8") + " <lizhe@yishui.gov.cn>, wangkun@qq.com",
        "Subject: " + ew("科普基地年度考核材料", "gb2312"),
        "Date: " + rfc_date(2026, 3, 18, 9, 30, 0),
        "Message-ID: <tencent_1B2C3D4E5F60718293A4B5C6D7E8F9A0B108@qq.com>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="gb2312"',
        "Content-Transfer-Encoding: base64",
    ], b64(text_lines(body, "gb2312")))


@fixture("0008-gbk-char-split-across-encoded-words.eml")
def f0008():
    # A GBK character (协 = D0 AD) split between two adjacent encoded words.
    subject = "【稿件】沂水县科协科普大篷车进乡村活动".encode("gbk")
    cut = subject.index("协".encode("gbk")) + 1
    assert subject[cut - 1:cut + 1] == b"\xd0\xad"
    body = ("市科协科普部：\n"
            "　　3月15日，沂水县科协组织科普大篷车走进许家湖镇，开展科普宣传活动。\n"
            "\n"
            "沂水县科协")
    return part([
        "From: " + ew("沂水县科协", "gbk") + " <ysxkx@163.com>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew(subject[:cut], "gbk"),
        " " + ew(subject[cut:], "gbk"),
        "Date: " + rfc_date(2026, 3, 16, 14, 20, 31),
        "Message-ID: <2a7d3e1f.5c6b.18e4d3f2a1c.Coremail.ysxkx@163.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=gbk",
        "Content-Transfer-Encoding: base64",
    ], b64(text_lines(body, "gbk")))


@fixture("0009-charset-x-gbk.eml")
def f0009():
    # x-gbk label (unknown to Python's codecs) on Subject, From name and an 8bit body.
    body = ("市科协：\n"
            "　　经研究，推荐王堃同志为临沂市优秀科技工作者候选人，材料随后报送。\n"
            "\n"
            "沂南县科协\n"
            "2026年3月18日")
    return part([
        "From: " + ew("沂南县科协", "x-gbk", codec="gbk") + " <ynxkx@sohu.com>",
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew("关于推荐临沂市优秀科技工作者的报告", "x-gbk", codec="gbk"),
        "Date: " + rfc_date(2026, 3, 18, 10, 15, 42),
        "Message-ID: <5E7A1B2C.3D4E5F60@sohu.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=x-gbk",
        "Content-Transfer-Encoding: 8bit",
    ], text_lines(body, "gbk"))


@fixture("0010-charset-x-unknown.eml")
def f0010():
    # X-UNKNOWN label: Subject bytes are UTF-8, body bytes are GBK (both must be sniffed).
    body = ("市科协调宣部：\n"
            "　　我会关注情况统计表已填好，见正文：关注人数356人。\n"
            "\n"
            "临沂市农学会")
    return part([
        "From: lynxh@sina.com",
        "To: skxdxb@lykx.gov.cn",
        "Subject: " + ew("关注情况统计（临沂市农学会）", "X-UNKNOWN", "Q", "utf-8"),
        "Date: " + rfc_date(2026, 3, 19, 17, 45, 3),
        "Message-ID: <20260319174503.GA4411@sina.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=X-UNKNOWN",
        "Content-Transfer-Encoding: 8bit",
    ], text_lines(body, "gbk"))


@fixture("0011-charset-windows-874.eml")
def f0011():
    # A Thai partner writes in windows-874 (LookupError in Python's codecs); Subject in
    # windows-874 encoded words (B, B, Q) as Hotmail sends them.
    subject = "ขอบคุณสำหรับความร่วมมือ"
    data = subject.encode("cp874")
    body = ("เรียน สมาคมวิทยาศาสตร์และเทคโนโลยีเมืองหลินอี้\n"
            "\n"
            "ขอบคุณสำหรับการต้อนรับอย่างอบอุ่น\n"
            "\n"
            "Somchai\n"
            "Kasetsart University")
    return part([
        "Message-ID: <SNT130-W31BB3EFAFD92333A053BD3D4AD0@phx.gbl>",
        "Content-Type: text/plain; charset=\"windows-874\"",
        "Content-Transfer-Encoding: 8bit",
        "From: Somchai Prasert <somchai.p@ku.ac.th>",
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew(data[:8], "windows-874"),
        " " + ew(data[8:16], "windows-874") + " " + ew(data[16:], "windows-874", "Q"),
        "Date: " + rfc_date(2026, 3, 20, 9, 21, 49, "+0700"),
        "MIME-Version: 1.0",
    ], text_lines(body, "cp874"))


@fixture("0012-malformed-charset-charset-gb2312.eml")
def f0012():
    # The real malformed label  charset="charset="GB2312""  (mikel/mail repairs it),
    # over a body with a GBK-only character (堃).
    body = ("李老师：\n"
            "　　我会科普讲座安排如下：3月28日，主讲人王堃研究员。\n"
            "\n"
            "临沂市农学会")
    return part([
        "From: " + ew("临沂市农学会", "GB2312") + " <lynxh@sina.com>",
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew("科普讲座安排", "GB2312"),
        "Date: " + rfc_date(2026, 3, 20, 11, 0, 0),
        "Message-ID: <20260320110000.7C1D@sina.com>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="charset="GB2312""',
        "Content-Transfer-Encoding: 8bit",
    ], text_lines(body, "gbk"))


@fixture("0013-gb2312-label-utf8-body.eml")
def f0013():
    # Declared gb2312, but the body bytes are UTF-8 (the spamscope mail_test_12 case).
    body = ("市科协科普部：\n"
            "　　河东区科协“科普进校园”活动稿件见正文，请审核。\n"
            "\n"
            "河东区科协")
    return part([
        "From: " + ew("河东区科协", "gb2312") + " <hdqkx@163.com>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("科普进校园活动稿件", "gb2312"),
        "Date: " + rfc_date(2026, 3, 20, 15, 12, 9),
        "Message-ID: <7b3c2d1e.4a5b.18e5f1a2b3c.Coremail.hdqkx@163.com>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="gb2312"',
        "Content-Transfer-Encoding: base64",
    ], b64(text_lines(body, "utf-8")))


@fixture("0014-forwarded-rfc822-with-attachment.eml")
def f0014():
    # A unit (兰山区科协) forwards, as an attachment, the 稿件 a township unit sent it;
    # the inner message has its own GBK body and PDF attachment.
    inner_body = ("兰山区科协：\n"
                  "　　附件为我镇冬季果树管理技术培训的稿件，请审核。\n"
                  "\n"
                  "枣园镇农技协")
    inner_text = text_lines(inner_body, "gbk")
    pdf_name = ew("冬季果树管理技术培训.pdf", "GBK")
    ib = "----=_Part_77_1122334455.1772995212000"
    inner = part([
        "Date: " + rfc_date(2026, 3, 9, 16, 40, 12),
        "From: " + ew("枣园镇农技协", "GBK") + " <zyznjx@126.com>",
        "To: lsqkx@126.com",
        "Message-ID: <3a9f1c2e.1b2c.18dd1a2b3c4.Coremail.zyznjx@126.com>",
        "Subject: " + ew("稿件：枣园镇开展冬季果树管理技术培训", "GBK"),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{ib}"',
    ], multipart(ib, [
        part(["Content-Type: text/plain; charset=GBK", "Content-Transfer-Encoding: base64"],
             b64(payload("forwarded body text (GBK)", inner_text))),
        part([f'Content-Type: application/pdf; name="{pdf_name}"', "Content-Transfer-Encoding: base64",
              f'Content-Disposition: attachment; filename="{pdf_name}"'],
             b64(payload("冬季果树管理技术培训.pdf", PDF_TRAINING))),
    ]))
    outer_body = ("李老师：\n"
                  "　　转发枣园镇农技协的科普稿件，请审核。\n"
                  "\n"
                  "兰山区科协\n"
                  "王堃")
    eml_name = ew("稿件：枣园镇开展冬季果树管理技术培训.eml", "utf-8")
    ob = "----=_Part_90_5566778899.1773887400000"
    return part([
        "Date: " + rfc_date(2026, 3, 19, 10, 30, 0),
        "From: " + ew("兰山区科协", "utf-8") + " <lsqkx@126.com>",
        "To: skxkpb@lykx.gov.cn",
        "Message-ID: <4c8d2e1f.2d3e.18e5a0b1c2d.Coremail.lsqkx@126.com>",
        "Subject: " + ew("转发：枣园镇农技协冬季果树管理技术培训稿件", "utf-8"),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{ob}"',
    ], multipart(ob, [
        part(["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"],
             qp(outer_body, "utf-8")),
        part([f'Content-Type: message/rfc822; name="{eml_name}"',
              f'Content-Disposition: attachment; filename="{eml_name}"'],
             inner),
    ]))


@fixture("0015-qq-large-attachment-plain.eml")
def f0015():
    # QQ Mail 超大附件 in plain text (gb18030, base64): two files, the second with
    # full-width parentheses in its name.
    text = ("王老师：\n"
            "　　沂水县科普活动周宣传视频和现场照片较大，以超大附件形式发送，请查收。\n"
            "\n"
            "沂水县科协\n"
            "2026年3月20日\n"
            "\n"
            "\n"
            "\n"
            "从QQ邮箱发来的超大附件\n"
            "\n"
            "沂水县科普活动周宣传片.mp4 (356.20M, 2026年4月3日 21:59 到期)进入下载页面："
            "https://wx.mail.qq.com/ftn/download?func=3&k=5e3c0a6b1f2d4e7a&key=9b8c7d6e5f4a3b2c1d0e&code=7684decd\n"
            "活动现场照片（第二批）.zip (88.50M, 2026年4月3日 21:59 到期)进入下载页面："
            "https://wx.mail.qq.com/ftn/download?func=3&k=1a2b3c4d5e6f7a8b&key=0f1e2d3c4b5a69788796&code=2c9d41ab")
    return part([
        "X-QQ-mid: xmsezb5-0t1773990000t8c2d1e0f",
        'From: "' + ew("沂水县科协", "gb18030") + '" <2851234567@qq.com>',
        'To: "' + ew("skxkpb", "gb18030") + '" <skxkpb@lykx.gov.cn>',
        "Subject: " + ew("沂水县科普活动周视频稿件（超大附件）", "gb18030"),
        "Mime-Version: 1.0",
        'Content-Type: text/plain;',
        '\tcharset="gb18030"',
        "Content-Transfer-Encoding: base64",
        "Date: " + rfc_date(2026, 3, 20, 15, 0, 0),
        "X-Priority: 3",
        "Message-ID: <tencent_9C8B7A6F5E4D3C2B1A0F9E8D7C6B5A4F3E09@qq.com>",
        "X-QQ-MIME: TCMime 1.0 by Tencent",
        "X-Mailer: QQMail 2.x",
    ], b64(text_lines(text, "gb18030")))


EXMAIL_URL = ("http://mail.qq.com/cgi-bin/ftnExs_download?t=exs_ftn_download"
              "&k=0b6438350f3a2c1d7e9f20415263a4b5c6d7e8f90a1b2c3d&code=3f2e1d0c")


@fixture("0016-exmail-large-attachment-alternative.eml")
def f0016():
    # Tencent Exmail 超大附件: multipart/alternative, the same link in the text part
    # and (as an <a href> with &amp;) in the HTML part. One file, so one link.
    text = ("各位老师：\n"
            "　　临沂市农学会2026年科普讲座录像已上传，请下载审核。\n"
            "\n"
            "临沂市农学会\n"
            "王堃\n"
            "\n"
            "\n"
            "\n"
            "从腾讯企业邮箱发来的超大附件\n"
            "\n"
            "2026年科普讲座录像.mp4 (1.25G, 2026年4月2日 10:30 到期)进入下载页面：" + EXMAIL_URL)
    href = EXMAIL_URL.replace("&", "&amp;")
    html = ("<div>各位老师：</div><div>　　临沂市农学会2026年科普讲座录像已上传，请下载审核。</div>"
            "<div><br></div><div>临沂市农学会</div><div>王堃</div><div><br></div>"
            '<div style="background:#dee8f2;padding:4px;">'
            '<div style="font-size:14px;padding:4px 8px 8px 8px;"><b>从腾讯企业邮箱发来的超大附件</b></div>'
            '<div style="background:#fff;padding:4px;"><div style="font-size:12px;">'
            f'<a href="{href}" target="_blank">2026年科普讲座录像.mp4</a>'
            '<span style="color:#bbb;"> (1.25G, 2026年4月2日 10:30 到期)</span></div>'
            f'<div><a href="{href}" target="_blank">进入下载页面</a></div></div></div>')
    b = "----=_NextPart_6602B3C4_1D2E3F40_51627384"
    return part([
        "X-QQ-mid: bizesmtp91t1773900000tq2w3e4r",
        'From: "' + ew("王堃", "utf-8") + '" <wangkun@lynxh.org.cn>',
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew("临沂市农学会科普讲座录像（超大附件）", "utf-8"),
        "Mime-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{b}"',
        "Date: " + rfc_date(2026, 3, 19, 14, 0, 0),
        "Message-ID: <tencent_5A4B3C2D1E0F9A8B7C6D5E4F3A2B1C0D9E08@lynxh.org.cn>",
        "X-Mailer: QQMail 2.x",
    ], multipart(b, [
        part(['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: base64"],
             b64(text_lines(text, "utf-8"))),
        part(['Content-Type: text/html; charset="utf-8"', "Content-Transfer-Encoding: base64"],
             b64(html.encode("utf-8"))),
    ], preamble="This is a multi-part message in MIME format."))


NETEASE_FILE = "https://mail.163.com/large-attachment-download/index.html?file=djAyZG1meTh2TFlFOWFwTExZcUhVbHN6Ymc"
NETEASE_APP = "http://u.163.com/RcUwvU56g?spm=pos.free_webmail_1.composePage.0.0.bigattachMasterDownLoad"
NETEASE_HTML = (
    '<div style="line-height:1.7;color:#000000;font-size:14px;font-family:Arial">'
    "<div>各位老师：</div><div>　　兰山区科普宣传片已通过超大附件发送，请查收。</div>"
    "<div><br></div><div>兰山区科协</div></div><br><br>"
    '<div id="divNeteaseBigAttach" style="background:#dee8f2;padding:4px;clear:both;">'
    '<div style="padding:4px"><div><b>从网易163邮箱发来的超大附件</b>'
    f'<a class="bigattach-mailmaster-download" href="{NETEASE_APP}">推荐客户端极速下载</a></div>'
    '<div><div><div style="float:left;width:36px">'
    f'<a href="{NETEASE_FILE}"></a></div>'
    "<div><div>"
    f'<a href="{NETEASE_FILE}">兰山区科普宣传片.mp4</a>'
    '<span style="color:#bbb"> (512.36M, 2026年4月10日 9:05 到期)</span></div>'
    f'<div><a href="{NETEASE_FILE}">下载</a></div>'
    "</div></div></div></div></div>")


@fixture("0017-netease-163-large-attachment-html-only.eml")
def f0017():
    # NetEase 163 超大附件: HTML only (GBK, base64), <div id="divNeteaseBigAttach">, the
    # file link three times and a Mail Master (u.163.com) promotion button before it.
    return part([
        "Received: from lsqkx$163.com ( [112.240.9.18] ) by ajax-webmail-wmsvr-40-112",
        " (Coremail) ; " + rfc_date(2026, 3, 21, 9, 5, 33),
        "X-Originating-IP: [112.240.9.18]",
        "Date: " + rfc_date(2026, 3, 21, 9, 5, 33),
        "From: " + ew("兰山区科协", "GBK") + " <lsqkx@163.com>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("兰山区科普宣传片（超大附件）", "GBK"),
        "X-Priority: 3",
        "X-Mailer: Coremail Webmail Server Version XT5.0.14 build 20240801(9da12a7b)",
        "Content-Type: text/html; charset=GBK",
        "Content-Transfer-Encoding: base64",
        "MIME-Version: 1.0",
        "Message-ID: <1d2c3b4a.5e6f.18e6a7b8c9d.Coremail.lsqkx@163.com>",
    ], b64(NETEASE_HTML.encode("gbk")))


@fixture("0018-path-traversal-filenames.eml")
def f0018():
    # Hostile or careless file names: ../../etc/passwd, ..\..\win.ini, a Windows path
    # with : and ?, and one that sanitises to nothing.
    b = "=_traversal_7f3e2d1c"
    traversal_cn = ew("../../沂水县科协/稿件.txt", "utf-8")
    # a Windows path with characters that are unsafe in a file name
    return part([
        "From: ysxkx@163.com",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("附件名称测试", "utf-8"),
        "Date: " + rfc_date(2026, 3, 21, 10, 0, 0),
        "Message-ID: <traversal.20260321100000@163.com>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{b}"',
    ], multipart(b, [
        part(["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"],
             text_lines("请查收附件。", "utf-8")),
        part(['Content-Type: application/octet-stream; name="../../etc/passwd"',
              'Content-Disposition: attachment; filename="../../etc/passwd"',
              "Content-Transfer-Encoding: base64"],
             b64(payload("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"))),
        part(['Content-Type: application/octet-stream; name="..\\..\\win.ini"',
              'Content-Disposition: attachment; filename="..\\..\\win.ini"',
              "Content-Transfer-Encoding: base64"],
             b64(payload("..\\..\\win.ini", b"[fonts]\r\n[extensions]\r\n"))),
        part(['Content-Type: application/octet-stream',
              f'Content-Disposition: attachment; filename="{traversal_cn}"',
              "Content-Transfer-Encoding: base64"],
             b64(payload("../../沂水县科协/稿件.txt", "稿件正文\n".encode("utf-8")))),
        part(['Content-Type: text/plain; charset=utf-8',
              'Content-Disposition: attachment; filename="' + ew("C:\\Users\\Public\\报送表:终稿?.txt", "utf-8") + '"',
              "Content-Transfer-Encoding: base64"],
             b64(payload("C:\\Users\\Public\\报送表:终稿?.txt", "序号,单位名称\n".encode("utf-8")))),
        part(['Content-Type: image/png',
              'Content-Disposition: attachment; filename="../.."',
              "Content-Transfer-Encoding: base64"],
             b64(payload("../..", PNG))),
    ]))


@fixture("0019-no-message-id.eml")
def f0019():
    # A script-sent message without Message-ID: the key is sha256 of the file.
    body = ("市科协：\n"
            "　　我会老科技工作者科普报告团3月份活动情况：开展科普报告8场。\n"
            "\n"
            "临沂市老科协")
    return part([
        "From: " + ew("临沂市老科协", "utf-8") + " <lylkx@163.com>",
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew("3月份科普报告团活动情况", "utf-8"),
        "Date: " + rfc_date(2026, 3, 31, 16, 30, 0),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ], text_lines(body, "utf-8"))


@fixture("0020-single-part-pdf-body.eml")
def f0020():
    # A scanner's message: the whole body is application/pdf, no file name anywhere.
    return part([
        "From: scanner@yishui.gov.cn",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("扫描件", "utf-8"),
        "Date: " + rfc_date(2026, 3, 18, 8, 59, 2),
        "Message-ID: <scan.20260318085902.0001@yishui.gov.cn>",
        "MIME-Version: 1.0",
        "Content-Type: application/pdf",
        "Content-Transfer-Encoding: base64",
    ], b64(payload("scanner PDF (no name)", PDF_SCAN)))


HTML_ONLY = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>\n'
             "<p>市科协调宣部：</p>\n"
             "<p>我区关注情况统计如下：</p>\n"
             '<table border="1"><tr><th>序号</th><th>单位名称</th><th>关注人数（人）</th></tr>\n'
             "<tr><td>1</td><td>高新区科协</td><td>１２３</td></tr></table>\n"
             "<p>高新区科协<br>2026年3月19日</p>\n"
             "</body></html>")


@fixture("0021-html-only.eml")
def f0021():
    # HTML only (quoted-printable UTF-8) with a table.
    return part([
        "From: " + ew("高新区科协", "utf-8") + " <gxqkx@163.com>",
        "To: skxdxb@lykx.gov.cn",
        "Subject: " + ew("高新区关注情况统计", "utf-8"),
        "Date: " + rfc_date(2026, 3, 19, 9, 40, 0),
        "Message-ID: <6e5d4c3b.7a8b.18e5b1c2d3e.Coremail.gxqkx@163.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
    ], qp(HTML_ONLY, "utf-8"))


QQ_VACATION_HTML = ('<meta http-equiv="Content-Type" content="text/html; charset=gb18030">'
                    "<div>这是来自QQ邮箱的假期自动回复邮件。<br><br>"
                    "您好，我最近正在休假中，无法亲自回复您的邮件。我将在假期结束后，尽快给您回复。</div>")


@fixture("0022-qq-auto-reply.eml")
def f0022():
    # QQ vacation auto-reply: 自动回复 subject, HTML only, no Auto-Submitted header.
    return part([
        "X-QQ-mid: xmsezb9-1t1773640000tz9y8x7w",
        'From: "' + ew("李喆", "gb18030") + '" <1850001234@qq.com>',
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("自动回复: 【回执】沂水县科协稿件已收到（KP-2026-0042）", "gb18030"),
        "Mime-Version: 1.0",
        'Content-Type: text/html;',
        '\tcharset="gb18030"',
        "Content-Transfer-Encoding: base64",
        "Date: " + rfc_date(2026, 3, 16, 9, 56, 2),
        "Message-ID: <tencent_AB12CD34EF56AB78CD90EF12AB34CD56EF07@qq.com>",
        "In-Reply-To: <20260316015501.7f3a.kp-2026-0042@lykx.gov.cn>",
        "References: <20260316015501.7f3a.kp-2026-0042@lykx.gov.cn>",
        "X-QQ-MIME: TCMime 1.0 by Tencent",
    ], b64(QQ_VACATION_HTML.encode("gb18030")))


DSN_TEXT = ("This is the mail system at host mail.lykx.gov.cn.\n"
            "\n"
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients. It's attached below.\n"
            "\n"
            "For further assistance, please send mail to postmaster.\n"
            "\n"
            "If you do so, please include this problem report. You can\n"
            "delete your own text from the attached returned message.\n"
            "\n"
            "                   The mail system\n"
            "\n"
            "<zyznjx@126.com>: host mx.126.com[220.181.15.111] said: 550 User not found:\n"
            "    zyznjx@126.com (in reply to RCPT TO command)")


@fixture("0023-dsn-bounce.eml")
def f0023():
    # Postfix DSN: multipart/report; report-type=delivery-status, returning the robot's
    # receipt (message/rfc822) to a township unit that does not exist.
    receipt = ("枣园镇农技协 您好：\n"
               "您报送的稿件《枣园镇开展冬季果树管理技术培训》已收到，编号 KP-2026-0051。\n"
               "【临沂市科协】")
    receipt_bytes = text_lines(receipt, "utf-8")
    returned = part([
        "Date: " + rfc_date(2026, 3, 19, 10, 31, 5),
        "From: " + ew("临沂市科协科普部", "utf-8") + " <skxkpb@lykx.gov.cn>",
        "To: zyznjx@126.com",
        "Subject: " + ew("【回执】您的稿件已收到（KP-2026-0051）", "utf-8"),
        "Message-ID: <20260319023105.9a1b.kp-2026-0051@lykx.gov.cn>",
        "Auto-Submitted: auto-generated",
        "X-Auto-Response-Suppress: All",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
    ], b64(payload("returned receipt body", receipt_bytes)))
    status = join([
        "Reporting-MTA: dns; mail.lykx.gov.cn",
        "X-Postfix-Queue-ID: 4Fh2Qm0y1Kz9sWd",
        "X-Postfix-Sender: rfc822; skxkpb@lykx.gov.cn",
        "Arrival-Date: " + rfc_date(2026, 3, 19, 10, 31, 5),
        "",
        "Final-Recipient: rfc822; zyznjx@126.com",
        "Original-Recipient: rfc822;zyznjx@126.com",
        "Action: failed",
        "Status: 5.0.0",
        "Remote-MTA: dns; mx.126.com",
        "Diagnostic-Code: smtp; 550 User not found: zyznjx@126.com",
    ]) + CRLF
    b = "4Fh2Qm0y1Kz9sWd.1773887467/mail.lykx.gov.cn"
    return part([
        "Return-Path: <>",
        "Date: " + rfc_date(2026, 3, 19, 10, 31, 7),
        "From: MAILER-DAEMON@mail.lykx.gov.cn (Mail Delivery System)",
        "Subject: Undelivered Mail Returned to Sender",
        "To: skxkpb@lykx.gov.cn",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{b}"',
        "Content-Transfer-Encoding: 8bit",
        "Message-Id: <20260319023107.5C2E01A0B3C@mail.lykx.gov.cn>",
    ], multipart(b, [
        part(["Content-Description: Notification", "Content-Type: text/plain; charset=us-ascii"],
             text_lines(DSN_TEXT, "ascii")),
        part(["Content-Description: Delivery report", "Content-Type: message/delivery-status"], status),
        part(["Content-Description: Undelivered Message", "Content-Type: message/rfc822"], returned),
    ], preamble="This is a MIME-encapsulated message."))


@fixture("0024-signature-bracket-unit.eml")
def f0024():
    # A reply signed 【沂水县科协】 above a Coremail quote whose text carries 【临沂市科协】.
    text = ("王老师：\n"
            "　　修改稿已按要求完善，请再审核。\n"
            "\n"
            "【沂水县科协】\n"
            "\n"
            "\n"
            "-----原始邮件-----\n"
            "发件人: \"临沂市科协科普部\" <skxkpb@lykx.gov.cn>\n"
            "发送时间: 2026-03-17 10:20:11 (星期二)\n"
            "收件人: ysxkx@163.com\n"
            "主题: 【退回】沂水县科协稿件（KP-2026-0042）\n"
            "\n"
            "稿件需补充活动照片。\n"
            "【临沂市科协】")
    return part([
        "Date: " + rfc_date(2026, 3, 18, 8, 15, 0),
        "From: " + ew("沂水县科协", "utf-8") + " <ysxkx@163.com>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("回复：【退回】沂水县科协稿件（KP-2026-0042）", "utf-8"),
        "Message-ID: <0a1b2c3d.6e7f.18e5c3d4e5f.Coremail.ysxkx@163.com>",
        "In-Reply-To: <20260317022011.1c2d.kp-2026-0042@lykx.gov.cn>",
        "References: <20260316015501.7f3a.kp-2026-0042@lykx.gov.cn> <20260317022011.1c2d.kp-2026-0042@lykx.gov.cn>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: base64",
    ], b64(text_lines(text, "utf-8")))


@fixture("0025-signature-reporting-unit.eml")
def f0025():
    # 报送单位：兰山区科协 at the end of the new text.
    text = ("市科协科普部：\n"
            "　　现将我区“科普进社区”活动信息报送如下，请审核。\n"
            "　　3月18日，兰山区科协在金雀山街道开展科普进社区活动，发放科普资料500余份。\n"
            "\n"
            "报送单位：兰山区科协\n"
            "联系人：王堃  电话：0539-8123456")
    return part([
        "Date: " + rfc_date(2026, 3, 19, 8, 40, 0),
        "From: " + ew("王堃", "utf-8") + " <lsqkx@126.com>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("兰山区科协“科普进社区”活动信息", "utf-8"),
        "Message-ID: <5d6e7f80.1a2b.18e5a9b8c7d.Coremail.lsqkx@126.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
    ], qp(text, "utf-8"))


@fixture("0026-docx-declared-octet-stream-named-wps.eml")
def f0026():
    # A real .docx, declared application/octet-stream, named .wps (RFC 2047 GBK in quotes).
    name = ew("沂水县科协科普日活动总结.wps", "GBK")
    b = "----=_001_NextPart572931804817_=----"
    return part([
        "Date: " + rfc_date(2026, 9, 22, 9, 10, 11),
        "From: " + ew("沂水县科协", "GBK") + " <ysxkx@163.com>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("沂水县科协科普日活动总结", "GBK"),
        "X-Mailer: Foxmail 7.2.25.228[cn]",
        "Mime-Version: 1.0",
        "Message-ID: <202609220910113817412@163.com>",
        f'Content-Type: multipart/mixed; boundary="{b}"',
    ], multipart(b, [
        part(['Content-Type: text/plain; charset="GBK"', "Content-Transfer-Encoding: base64"],
             b64(text_lines("见附件。\n\n沂水县科协", "gbk"))),
        part([f'Content-Type: application/octet-stream; name="{name}"',
              "Content-Transfer-Encoding: base64",
              f'Content-Disposition: attachment; filename="{name}"'],
             b64(payload("沂水县科协科普日活动总结.wps", minimal_docx()))),
    ], preamble="This is a multi-part message in MIME format."))


@fixture("0027-date-minus-0000-is-utc.eml")
def f0027():
    # Date with -0000: RFC 5322 says the time is UTC, local offset unknown.
    return part([
        "From: " + ew("临沂市老科协", "utf-8") + " <lylkx@163.com>",
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew("活动通知", "utf-8"),
        "Date: " + rfc_date(2026, 3, 18, 14, 20, 0, "-0000"),
        "Message-ID: <20260318142000.GA1@lylkx.example.cn>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ], text_lines("请各单位按时参加。\n\n临沂市老科协", "utf-8"))


@fixture("0028-date-without-zone.eml")
def f0028():
    # Date with no zone at all: read as China time (+08:00).
    return part([
        "From: " + ew("临沂市老科协", "utf-8") + " <lylkx@163.com>",
        "To: skxxhb@lykx.gov.cn",
        "Subject: " + ew("活动通知（补发）", "utf-8"),
        "Date: " + rfc_date(2026, 3, 18, 14, 25, 0, ""),
        "Message-ID: <20260318142500.GA2@lylkx.example.cn>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ], text_lines("请各单位按时参加。\n\n临沂市老科协", "utf-8"))


@fixture("0029-large-base64-attachment-lf.eml")
def f0029():
    # LF line ends throughout and a >64 KiB base64 attachment (the parser's fast path),
    # followed by a small PNG part.
    big = tiny_pdf("Linyi science museum exhibit album", pad=120_000)
    name = ew("临沂市科技馆科普展品图册.pdf", "utf-8")
    b = "=_big_5a4b3c2d1e"
    return part([
        "From: " + ew("临沂市科技馆科普基地", "utf-8") + " <kjg@lykjg.org.cn>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("科普展品图册", "utf-8"),
        "Date: " + rfc_date(2026, 3, 22, 10, 10, 10),
        "Message-ID: <album.20260322101010@lykjg.org.cn>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{b}"',
    ], multipart(b, [
        part(["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"],
             text_lines("图册见附件。\n\n临沂市科技馆科普基地", "utf-8", LF), LF),
        part(["Content-Type: application/pdf",
              f'Content-Disposition: attachment; filename="{name}"',
              "Content-Transfer-Encoding: base64"],
             b64(payload("临沂市科技馆科普展品图册.pdf", big), LF), LF),
        part(["Content-Type: image/png", 'Content-Disposition: inline; filename="logo.png"',
              "Content-ID: <logo@lykjg>", "Content-Transfer-Encoding: base64"],
             b64(payload("logo.png", PNG), LF), LF),
    ], LF), LF)


@fixture("0030-rfc2231-single-utf8-filename.eml")
def f0030():
    # One RFC 2231 parameter, no continuation: filename*=utf-8''... as Python's own
    # email package (EmailMessage.add_attachment) and many scripts write it.
    name = "科普讲座通知.pdf"
    b = "===============5823746519283746501=="
    return part([
        "Content-Type: multipart/mixed; boundary=\"" + b + "\"",
        "MIME-Version: 1.0",
        "From: " + ew("临沂市科技馆", "utf-8") + " <kjg@lykjg.org.cn>",
        "To: skxkpb@lykx.gov.cn",
        "Subject: " + ew("科普讲座通知", "utf-8"),
        "Date: " + rfc_date(2026, 3, 23, 9, 0, 0),
        "Message-ID: <177422760000.12345.6789012345678901234@lykjg.org.cn>",
    ], multipart(b, [
        part(['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: base64"],
             b64(text_lines("通知见附件。\n\n临沂市科技馆科普基地", "utf-8"))),
        part(["Content-Type: application/pdf",
              "Content-Transfer-Encoding: base64",
              "Content-Disposition: attachment; filename*=utf-8''" + pct(name.encode("utf-8"))],
             b64(payload(name, tiny_pdf("Science lecture notice")))),
    ]))


@fixture("0031-outlook-long-filename-folded-encoded-words.eml")
def f0031():
    # Outlook zh-CN: labels gb2312 but writes cp936 (堃 is GBK-only); a long file name as
    # several encoded words folded across lines INSIDE the quoted name/filename; the text
    # part sits in multipart/alternative inside multipart/mixed.
    name = "临沂市农学会关于推荐王堃同志为优秀科技工作者候选人的报告.docx"
    words = ew_split(name, "gb2312", "B", "gbk", 12)

    def quoted(key: str) -> list[str]:
        return ['\t' + key + '="' + words[0]] + [" " + w for w in words[1:-1]] + [" " + words[-1] + '"']

    body = ("市科协学会部：\n"
            "　　现将我会推荐王堃同志为优秀科技工作者候选人的报告报上，请审阅。\n"
            "\n"
            "临沂市农学会")
    html = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312"></head>'
            "<body><p>市科协学会部：</p><p>　　现将我会推荐王堃同志为优秀科技工作者候选人的报告报上，请审阅。</p>"
            "<p>临沂市农学会</p></body></html>")
    mixed = "_004_TYZPR06MB6123ABCDEF0123456789TYZPR06MB6123apcp_"
    alt = "_000_TYZPR06MB6123ABCDEF0123456789TYZPR06MB6123apcp_"
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return part([
        "From: " + ew("临沂市农学会", "gb2312") + " <lynxh@outlook.com>",
        "To: " + ew("市科协学会部", "gb2312") + " <skxxhb@lykx.gov.cn>",
        "Subject: " + ew("推荐王堃同志的报告", "gb2312", codec="gbk"),
        "Thread-Topic: " + ew("推荐王堃同志的报告", "gb2312", codec="gbk"),
        "Thread-Index: AdqC1nV0xWq3m1b2T0e4p7Qk9f1x2A==",
        "Date: " + rfc_date(2026, 3, 23, 2, 15, 40, "+0000"),
        "Message-ID: <TYZPR06MB6123ABCDEF0123456789TYZPR06MB6123.apcprd06.prod.outlook.com>",
        "Accept-Language: zh-CN, en-US",
        "Content-Language: zh-CN",
        "X-MS-Has-Attach: yes",
        f'Content-Type: multipart/mixed; boundary="{mixed}"',
        "MIME-Version: 1.0",
    ], multipart(mixed, [
        part([f'Content-Type: multipart/alternative; boundary="{alt}"'], multipart(alt, [
            part(['Content-Type: text/plain; charset="gb2312"', "Content-Transfer-Encoding: base64"],
                 b64(text_lines(body, "gbk"))),
            part(['Content-Type: text/html; charset="gb2312"', "Content-Transfer-Encoding: base64"],
                 b64(html.encode("gbk"))),
        ])),
        part([f"Content-Type: {docx_type};", *quoted("name"),
              "Content-Description: " + words[0],
              "Content-Disposition: attachment;", *quoted("filename"),
              "Content-Transfer-Encoding: base64"],
             b64(payload(name, minimal_docx()))),
    ]))


# --- main ------------------------------------------------------------------------------------


def build() -> dict[str, bytes]:
    out = {}
    for name, fn in _ORDER:
        _CURRENT.append(name)
        out[name] = fn()
        _CURRENT.pop()
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    built = build()
    bad = 0
    for name, data in built.items():
        path = HERE / name
        if check:
            if not path.exists() or path.read_bytes() != data:
                print(f"DIFFERS: {name}")
                bad += 1
            continue
        path.write_bytes(data)
    for name, data in built.items():
        print(f"{name}  file size={len(data)} sha256={hashlib.sha256(data).hexdigest()}")
        for what, blob in PAYLOADS.get(name, []):
            print(f"    payload {what!r}: size={len(blob)} sha256={hashlib.sha256(blob).hexdigest()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
