"""Synthetic but realistic incoming mail for the benchmarks: Chinese 稿件 from county 科协,
学会 and 区县 offices, as QQ/163/exmail clients send them.

* ~5 KB small messages: UTF-8 or GBK text, base64 transfer encoding (what those clients
  use), encoded-word Subject and From names; half of them multipart/alternative with HTML.
* every `large_every`-th message carries one 1–3 MB attachment of random bytes behind a
  real magic number (JPEG, PDF, ZIP), base64 with CRLF 76-column lines as real mail has,
  filename in RFC 2231 or encoded-word form.
* optionally one 30 MB "video" attachment (`huge()`).

Deterministic for a given seed, except the random attachment bytes (os.urandom: fast, and
incompressible as photos are). Every message has a distinct Message-ID, so nothing is
deduplicated away. CRLF line endings throughout (what IMAP carries).
"""

from __future__ import annotations

import base64
import os
import random
from datetime import datetime, timedelta, timezone
from email.charset import BASE64, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from typing import Iterator

CHINA = timezone(timedelta(hours=8))
CRLF_POLICY = compat32.clone(linesep="\r\n", max_line_length=76)
DOMAIN = "example.test"

UNITS = [
    ("沂水县科协", "yishui"), ("兰山区科协", "lanshan"), ("罗庄区科协", "luozhuang"),
    ("河东区科协", "hedong"), ("郯城县科协", "tancheng"), ("沂南县科协", "yinan"),
    ("兰陵县科协", "lanling"), ("费县科协", "feixian"), ("平邑县科协", "pingyi"),
    ("莒南县科协", "junan"), ("蒙阴县科协", "mengyin"), ("临沭县科协", "linshu"),
    ("临沂市农学会", "nongxue"), ("临沂市医学会", "yixue"), ("临沂市机械工程学会", "jixie"),
    ("临沂大学科协", "lyu"), ("临沂市气象学会", "qixiang"), ("临沂市林学会", "linxue"),
]
PEOPLE = ["李喆", "王芳", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周婷", "吴杰",
          "徐丽", "孙浩", "马超", "朱琳", "胡军", "郭佳", "何鹏", "高燕", "林峰", "罗娜"]
EVENTS = ["全国科普日活动", "科技工作者日座谈会", "科普进社区活动", "青少年科技创新大赛",
          "农业技术培训班", "院士专家工作站调研", "科普大篷车巡展", "学术年会",
          "防灾减灾科普宣传", "科技助力乡村振兴活动", "健康科普讲座", "科普讲解大赛",
          "科学素质提升行动", "学会服务站揭牌仪式", "科技志愿服务活动"]
SUBJECTS = ["【{unit}】{event}信息", "{unit}：{event}稿件", "投稿：{unit}成功举办{event}",
            "{unit}关于报送{event}稿件的函", "稿件-{unit}-{event}（{date}）",
            "{unit}{event}简报第{no}期"]
SENTENCES = [
    "为深入贯彻落实全民科学素质行动规划纲要，进一步营造讲科学、爱科学、学科学、用科学的浓厚氛围，",
    "{unit}精心组织、周密部署，联合县教体局、卫健局、农业农村局等{k}个部门共同开展了{event}。",
    "活动现场设置了科普展板{k}块，发放科普宣传资料{n}余份，接受群众咨询{m}余人次。",
    "专家们围绕农业种植技术、安全生产、健康生活、防范电信诈骗等群众关心的问题进行了深入浅出的讲解，",
    "并通过现场演示、互动问答、科学小实验等形式，让群众在轻松愉快的氛围中学到了科学知识。",
    "此次活动共组织科技志愿者{k}名，深入{m}个乡镇（街道）、{n}个行政村开展服务，",
    "受到了广大群众的热烈欢迎和一致好评，取得了良好的社会效果。",
    "下一步，我们将继续发挥科协组织优势，坚持面向基层、服务群众，不断创新科普工作方式方法，",
    "推动科普工作常态化、长效化，为建设创新型城市、推进乡村振兴贡献科协力量。",
    "活动中，与会人员参观了科技成果展示区，详细了解了新技术、新品种、新装备的推广应用情况。",
    "会议指出，要充分发挥学会联系广泛、人才荟萃、智力密集的优势，积极搭建学术交流平台，",
    "近年来，我县坚持把科普工作摆在突出位置，全县公民具备科学素质的比例达到{k}.{m}%。",
]
ATTACHMENTS = [  # (filename stem, maintype, subtype, magic)
    ("活动照片", "image", "jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
    ("稿件正文及照片", "application", "pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    ("活动图片打包", "application", "zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"),
]
EXT = {"jpeg": ".jpg", "pdf": ".pdf", "zip": ".zip", "mp4": ".mp4"}
MP4_MAGIC = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


_PLACEHOLDER = b"BENCHATTACHMENTPLACEHOLDER"


def _b64_crlf(data: bytes) -> bytes:
    """base64 in 76-column CRLF lines, the way mail clients write it (no final line break:
    the generator puts one before the boundary)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def _text_part(text: str, subtype: str, charset: str) -> MIMEText:
    cs = Charset(charset)
    cs.body_encoding = BASE64
    part = MIMEText("", subtype)
    del part["Content-Transfer-Encoding"]
    del part["MIME-Version"]
    part.set_payload(text, cs)
    return part


def _html(paragraphs: list[str], signature: list[str]) -> str:
    ps = "".join(f'<p style="text-indent:2em;line-height:1.8">{p}</p>\n' for p in paragraphs)
    sig = "<br>\n".join(signature)
    return ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>\n'
            '<body><div style="font-family:微软雅黑,宋体;font-size:14px">\n'
            f"<p>各位老师好：</p>\n{ps}<p>{sig}</p>\n</div></body></html>\n")


class Corpus:
    """`message(i)` is the i-th message (0-based) as CRLF bytes."""

    def __init__(self, n: int, large_every: int = 10, seed: int = 20261123,
                 large_min: int = 1 << 20, large_max: int = 3 << 20):
        self.n = n
        self.large_every = large_every
        self.seed = seed
        self.large_min = large_min
        self.large_max = large_max
        self.start = datetime(2026, 11, 1, 8, 0, tzinfo=CHINA)

    def is_large(self, i: int) -> bool:
        return self.large_every > 0 and i % self.large_every == self.large_every - 1

    def message(self, i: int, attachment_size: int | None = None, huge: bool = False) -> bytes:
        rnd = random.Random(self.seed * 1_000_003 + i)
        unit, slug = rnd.choice(UNITS)
        person = rnd.choice(PEOPLE)
        event = rnd.choice(EVENTS)
        when = self.start + timedelta(minutes=17 * i + rnd.randint(0, 16), seconds=rnd.randint(0, 59))
        fill = dict(unit=unit, event=event, k=rnd.randint(3, 40), m=rnd.randint(2, 60),
                    n=rnd.randint(200, 5000), date=f"{when.month}月{when.day}日", no=rnd.randint(1, 60))
        charset = "gbk" if rnd.random() < 0.3 else "utf-8"
        with_html = rnd.random() < 0.5
        # ~5 KB on average: HTML doubles the text, so plain-only messages get longer text.
        count = rnd.randint(11, 17) if with_html else rnd.randint(22, 32)
        paragraphs = []
        for _ in range(max(1, count // 3)):
            paragraphs.append("".join(rnd.choice(SENTENCES).format(**fill) for _ in range(3)))
        signature = [unit, f"联系人：{person}", f"电话：0539-{rnd.randint(2000000, 8999999)}",
                     f"{when.year}年{when.month}月{when.day}日"]
        text = "各位老师好：\n\n" + "\n\n".join("　　" + p for p in paragraphs) + "\n\n" + "\n".join(signature) + "\n"

        body = _text_part(text, "plain", charset)
        if with_html:
            alt = MIMEMultipart("alternative")
            del alt["MIME-Version"]
            alt.attach(body)
            alt.attach(_text_part(_html(paragraphs, signature), "html", charset))
            body = alt
        size = attachment_size
        if size is None and self.is_large(i):
            size = rnd.randint(self.large_min, self.large_max)
        blob = None
        if size:
            msg = MIMEMultipart("mixed")
            msg.attach(body)
            part, blob = self._attachment(rnd, size, huge)
            msg.attach(part)
        else:
            msg = body
        sender = f"{slug}{rnd.randint(1, 9)}@{slug}.{DOMAIN}"
        msg["From"] = formataddr((str(Header(unit, charset)), sender)) if rnd.random() < 0.8 \
            else formataddr((unit, sender), charset=charset)
        msg["To"] = f"skxkpb@{DOMAIN}"
        if rnd.random() < 0.3:
            msg["Cc"] = f"skxxhb@{DOMAIN}"
        subject = rnd.choice(SUBJECTS).format(**fill)
        if huge:
            subject = f"{unit}：{event}视频素材（大附件）"
        msg["Subject"] = Header(subject, charset)
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = f"<{when:%Y%m%d%H%M%S}.{i:07d}.{rnd.getrandbits(48):012x}@{slug}.{DOMAIN}>"
        msg["X-Mailer"] = rnd.choice(["Foxmail 7.2.25.228[cn]", "QQMail 2.x", "Coremail Webmail Server",
                                      "Microsoft Outlook 16.0"])
        raw = msg.as_bytes(policy=CRLF_POLICY)
        if blob is not None:  # splice the big base64 body in: the email generator is slow at it
            raw = raw.replace(_PLACEHOLDER, blob, 1)
        return raw

    def _attachment(self, rnd: random.Random, size: int, huge: bool):
        from email.mime.base import MIMEBase

        if huge:
            stem, maintype, subtype, magic = "活动视频", "video", "mp4", MP4_MAGIC
        else:
            stem, maintype, subtype, magic = rnd.choice(ATTACHMENTS)
        data = magic + os.urandom(size - len(magic))
        name = f"{stem}{rnd.randint(1, 99):02d}{EXT[subtype]}"
        part = MIMEBase(maintype, subtype)
        del part["MIME-Version"]
        part.set_payload(_PLACEHOLDER.decode("ascii"))
        part["Content-Transfer-Encoding"] = "base64"
        if rnd.random() < 0.5:  # RFC 2231 (Outlook, Thunderbird)
            part.set_param("name", ("utf-8", "", name))
            part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", name))
        else:  # encoded-word in quotes (QQ, 163, Foxmail)
            enc = Header(name, "utf-8").encode()
            part.set_param("name", enc)
            part.add_header("Content-Disposition", "attachment", filename=enc)
        return part, _b64_crlf(data)

    def huge(self, size: int = 30 << 20) -> bytes:
        """One extra message with a `size`-byte attachment (default 30 MB)."""
        return self.message(self.n, attachment_size=size, huge=True)

    def iter(self) -> Iterator[bytes]:
        for i in range(self.n):
            yield self.message(i)


if __name__ == "__main__":  # quick look: sizes and one sample
    import sys
    import time

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    c = Corpus(n)
    t = time.perf_counter()
    sizes = [len(c.message(i)) for i in range(n)]
    dt = time.perf_counter() - t
    small = [s for i, s in enumerate(sizes) if not c.is_large(i)]
    large = [s for i, s in enumerate(sizes) if c.is_large(i)]
    print(f"{n} messages in {dt:.2f}s; small avg {sum(small) / max(1, len(small)):.0f} B "
          f"(min {min(small)}, max {max(small)}); large {len(large)} avg {sum(large) / max(1, len(large)) / 1e6:.2f} MB")
    sys.stdout.write(c.message(0).decode("ascii", "replace")[:3000])
