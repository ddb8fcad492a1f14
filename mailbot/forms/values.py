"""Cell values as offices write them, made into clean values: numbers with commas, 约 and
人, Chinese numerals, full-width digits, phone numbers with spaces, dates in five spellings.

Pure: `normalise(value, type)` returns (value, None) or (None, the Chinese reason).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

TYPES = ("text", "integer", "phone", "date", "choice")
_EXCEL_EPOCH = datetime(1899, 12, 30)
_CJK = r"\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
# Cells that mean "nothing here" in a number, phone, date or choice column. In a text column
# they are answers (职称: 无) and stay as written.
_PLACEHOLDERS = {"", "-", "--", "—", "——", "/", "\\", "无", "暂无", "空", "n/a", "na", "none", "null"}
_PAREN = re.compile(r"\([^()]*\)$")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9, "壹": 1, "贰": 2, "叁": 3, "肆": 4, "伍": 5, "陆": 6, "柒": 7, "捌": 8, "玖": 9}
_CN_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_CHARS = set(_CN_DIGITS) | set(_CN_UNITS) | {"万", "萬"}
# Words around a count that do not change it ("约300人"), and those that make it vague ("三百多").
_APPROX_PREFIX = re.compile(r"^(约|大约|大概|共计|共)")
_UNIT_SUFFIX = re.compile(r"(人次|人|名|个|位|户|家)$")
_APPROX_SUFFIX = re.compile(r"(左右)$")
_VAGUE = re.compile(r"[多余几]|以上|以下|不足|超过|近")
_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.0+)?$")


def nfkc(text: str) -> str:
    """NFKC: full-width digits, letters, spaces and brackets become their plain forms."""
    return unicodedata.normalize("NFKC", text)


def clean_text(value) -> str | None:
    """Plain text of a cell: NFKC, trimmed, spaces collapsed, spaces inside Chinese removed."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date() if value.time() == datetime.min.time() else value
    text = _SPACES.sub(" ", nfkc(str(value))).strip()
    text = _CJK_GAP.sub("", text)
    return text or None


def clean_label(value) -> str:
    """A header label as compared with aliases: NFKC, no spaces, no required-field stars."""
    text = nfkc(str(value or "")).replace("*", "").replace("※", "")
    return _SPACES.sub("", text).strip(":").lower()


def strip_paren(label: str) -> str:
    """`关注人数(人)` → `关注人数`: the label without a trailing bracketed note."""
    return _PAREN.sub("", label) or label


def display(value) -> str | None:
    """A raw cell as a person would read it: for error messages and storage."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    text = str(value).strip()
    return text or None


def normalise(value, type: str, choices=None, *, today: date | None = None):
    """Clean one cell by its column type.

    Args:
        value: the cell as read (str, int, float, date, datetime or None).
        type: text, integer, phone, date or choice.
        choices: for choice: a list of names, or a mapping name → list of variants.
        today: for dates written without a year (12月20日): the year is the one nearest today.
    Returns:
        (value, None), or (None, message) such as "“三百多” 不是数字". Empty cells give (None, None);
        so do 无, 暂无, —, / in the other types, but in a text column they are what was written.
    """
    if type not in TYPES:
        raise ValueError(f"unknown column type {type!r}")
    if type == "text":
        return clean_text(value), None
    if value is None or (isinstance(value, str) and _is_blank(value)):
        return None, None
    if type == "integer":
        return clean_integer(value)
    if type == "phone":
        return clean_phone(value)
    if type == "date":
        return clean_date(value, today)
    return clean_choice(value, choices or ())


def _is_blank(text: str) -> bool:
    return _SPACES.sub("", nfkc(text)).lower() in _PLACEHOLDERS


def _quoted(value) -> str:
    return f"“{display(value)}”"


def clean_integer(value):
    """A count: 1,234 / １２３ / 约300人 / 一千二百三十四 / 1.2万 → int; vague counts are errors."""
    if isinstance(value, bool) or isinstance(value, (date, datetime)):
        return None, f"{_quoted(value)} 不是数字"
    if isinstance(value, (int, float)):
        return _whole(value, value)
    text = _SPACES.sub("", nfkc(value))
    text = _APPROX_PREFIX.sub("", text)
    text = _APPROX_SUFFIX.sub("", text)
    text = _UNIT_SUFFIX.sub("", text)
    if _VAGUE.search(text):
        return None, f"{_quoted(value)} 不是数字"
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    number = _parse_number(text)
    if number is None:
        return None, f"{_quoted(value)} 不是数字"
    return _whole(number, value)


def _whole(number, raw):
    if isinstance(number, float):
        if not number.is_integer():
            return None, f"{_quoted(raw)} 不是整数"
        number = int(number)
    if number < 0:
        return None, f"{_quoted(raw)} 不能是负数"
    return number, None


def _parse_number(text: str):
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+\.\d+", text):
        return float(text)
    wan = re.fullmatch(r"(\d+(?:\.\d+)?)[万萬]", text)
    if wan:
        return round(float(wan.group(1)) * 10000, 6)
    if text and set(text) <= _CN_CHARS:
        return chinese_integer(text)
    return None


def chinese_integer(text: str) -> int | None:
    """一千二百三十四 → 1234, 两千 → 2000, 一万零五 → 10005; None when not a clear number.

    Shortened forms (三百五 for 350, 一万五 for 15000) and digit strings (一二三) are refused:
    they are read differently by different people.
    """
    text = text.replace("萬", "万")
    if text in ("零", "〇"):
        return 0
    if text.count("万") > 1:
        return None
    high, _, low = text.rpartition("万")
    if "万" not in text:
        return _chinese_section(low)
    high_value = _chinese_section(high) if high else None
    if not high_value:
        return None
    if not low:
        return high_value * 10000
    if low[0] in "零〇":
        low_value = _chinese_section(low[1:])
    else:
        low_value = _chinese_section(low)
        if low_value is not None and low_value < 1000:
            return None  # 一万五: shortened, refuse
    return None if low_value is None else high_value * 10000 + low_value


def _chinese_section(text: str) -> int | None:
    """A number below 10000 in standard form; None for shortened or malformed ones."""
    total, last_unit, after_zero, i = 0, 10000, False, 0
    while i < len(text):
        ch = text[i]
        if ch in "零〇":
            after_zero, i = True, i + 1
            continue
        if ch in ("十", "拾") and i == 0:
            total, last_unit, i = 10, 10, 1
            continue
        digit = _CN_DIGITS.get(ch)
        if digit is None:
            return None
        unit = _CN_UNITS.get(text[i + 1]) if i + 1 < len(text) else None
        if unit:
            if unit >= last_unit or (ch == "两" and unit == 10):
                return None
            total, last_unit, after_zero, i = total + digit * unit, unit, False, i + 2
            continue
        if i + 1 != len(text) or (last_unit not in (10, 10000) and not after_zero):
            return None  # 一二三 or 三百五
        total, i = total + digit, i + 1
    return total if text else None


def clean_phone(value):
    """A mobile number as 11 digits: spaces, dashes, brackets and +86 removed."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    digits = re.sub(r"[\s\-–—_.()]", "", nfkc(str(value)))
    digits = re.sub(r"^(\+86|0086|86(?=1\d{10}$))", "", digits)
    if re.fullmatch(r"1[3-9]\d{9}", digits):
        return digits, None
    return None, f"{_quoted(value)} 不是11位手机号码"


_DATE_YMD = re.compile(r"^(\d{4})[年.\-/](\d{1,2})[月.\-/](\d{1,2})日?(?:\s*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATE_MD = re.compile(r"^(\d{1,2})[月.\-/](\d{1,2})日?$")
_DATE_BLANK = re.compile(r"^[年月日\s]*$")


def clean_date(value, today: date | None = None):
    """2026年12月20日, 2026-12-20, 2026.12.20, 2026/12/20, 12月20日, Excel serials → YYYY-MM-DD."""
    if isinstance(value, datetime):
        return value.date().isoformat(), None
    if isinstance(value, date):
        return value.isoformat(), None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 20000 <= value <= 80000:  # an Excel serial (1954…2119); smaller numbers are not dates
            return (_EXCEL_EPOCH + timedelta(days=int(value))).date().isoformat(), None
        return None, f"{_quoted(value)} 不是日期"
    text = nfkc(str(value)).strip()
    if _DATE_BLANK.match(text):
        return None, None  # a blank "  年  月  日" left as printed
    text = _chinese_date_digits(re.sub(r"\s*([年月日./\-])\s*", r"\1", text))
    return _date_from_text(text, value, today)


def _date_from_text(text: str, raw, today: date | None):
    match = _DATE_YMD.match(text) or _DATE_COMPACT.match(text)
    if match:
        return _make_date(int(match[1]), int(match[2]), int(match[3]), raw)
    match = _DATE_MD.match(text)
    if match:
        if today is None:
            return None, f"{_quoted(raw)} 没有写年份"
        month, day = int(match[1]), int(match[2])
        candidates = [_safe_date(today.year + k, month, day) for k in (-1, 0, 1)]
        candidates = [c for c in candidates if c]
        if not candidates:
            return None, f"{_quoted(raw)} 不是有效日期"
        return min(candidates, key=lambda c: abs((c - today).days)).isoformat(), None
    return None, f"{_quoted(raw)} 不是日期"


def _chinese_date_digits(text: str) -> str:
    """二〇二六年十二月二十日 → 2026年12月20日 (a year digit by digit, month and day as numbers)."""
    if not re.search(r"[〇零一二三四五六七八九十]", text):
        return text
    parts = re.split(r"([年月日])", text)
    out = []
    for part in parts:
        if part and set(part) <= set("〇零一二三四五六七八九") and len(part) == 4:
            out.append("".join(str(_CN_DIGITS[c]) for c in part))
        elif part and set(part) <= _CN_CHARS:
            number = chinese_integer(part)
            out.append(str(number) if number is not None else part)
        else:
            out.append(part)
    return "".join(out)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _make_date(year: int, month: int, day: int, raw):
    made = _safe_date(year, month, day)
    if made is None:
        return None, f"{_quoted(raw)} 不是有效日期"
    return made.isoformat(), None


def _choice_key(text: str) -> str:
    return _SPACES.sub("", nfkc(text)).lower()


def choice_table(choices) -> dict[str, str]:
    """Every accepted spelling (key form) → the canonical choice."""
    table: dict[str, str] = {}
    if isinstance(choices, Mapping):
        items = choices.items()
    else:
        items = ((name, ()) for name in choices)
    for name, variants in items:
        for spelling in (name, *(variants or ())):
            table.setdefault(_choice_key(spelling), name)
    return table


def clean_choice(value, choices: Sequence[str] | Mapping[str, Sequence[str]]):
    """One of the allowed names, matched after NFKC and trimming, variants included."""
    table = choice_table(choices)
    key = _choice_key(str(value))
    found = table.get(key) or table.get(strip_paren(key))
    if found:
        return found, None
    allowed = "、".join(choices)
    return None, f"{_quoted(value)} 不在可选项内" + (f"（{allowed}）" if allowed else "")
