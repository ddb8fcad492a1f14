"""Form templates (config/forms/*.yaml): what a statistics form looks like, as data.

A template names the form, the fields written above the table, and the table's columns with
the header spellings offices use. The YAML format is documented in the template files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import yaml

from mailbot.forms.values import TYPES, choice_table, clean_label, strip_paren

DEFAULT_TOTAL_LABELS = ("合计", "总计", "共计", "总数")
_TOP_KEYS = {"name", "title", "description", "header", "sequence", "unit_column", "columns", "total_labels",
             "person_key"}
_COLUMN_KEYS = {"name", "aliases", "type", "required", "choices", "note"}
_TYPE_NAMES = "、".join(TYPES)


class TemplateError(ValueError):
    """A template file that cannot be used; the message lists every problem, in Chinese."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Column:
    """A table column, or a header field above the table (same shape)."""

    name: str
    aliases: tuple[str, ...] = ()
    type: str = "text"
    required: bool = False
    choices: dict[str, tuple[str, ...]] | None = None

    @cached_property
    def choice_table(self) -> dict[str, str]:
        return choice_table(self.choices or {})


@dataclass(frozen=True)
class FormTemplate:
    """One kind of form: its columns in order, header fields, unit and sequence columns."""

    name: str
    title: str
    columns: tuple[Column, ...]
    header: tuple[Column, ...] = ()
    sequence: Column | None = None
    unit_column: str | None = None
    total_labels: tuple[str, ...] = DEFAULT_TOTAL_LABELS
    # Columns that together name one person (姓名 + 手机号): a person reported both by their
    # unit and in a county summary counts once in the tally (None: every row counts).
    person_key: tuple[str, ...] = ()
    source: str = field(default="", compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @cached_property
    def labels(self) -> dict[str, str]:
        """Cleaned header spelling → canonical column name (the sequence column included)."""
        table: dict[str, str] = {}
        for column in (*self.columns, *((self.sequence,) if self.sequence else ())):
            for spelling in (column.name, *column.aliases):
                table.setdefault(clean_label(spelling), column.name)
        for label, name in list(table.items()):
            table.setdefault(strip_paren(label), name)
        return table

    def find_column(self, label) -> str | None:
        """The canonical column a header cell names, or None."""
        cleaned = clean_label(label)
        if not cleaned:
            return None
        return self.labels.get(cleaned) or self.labels.get(strip_paren(cleaned))


def find_template(folder: str | Path, name: str) -> FormTemplate | None:
    """The template called `name` in `folder`; None when there is none or the folder cannot be read."""
    try:
        return next((t for t in load_templates(folder) if t.name == name), None)
    except TemplateError:
        return None


def load_templates(folder: str | Path) -> list[FormTemplate]:
    """Every template in `folder` (*.yaml, *.yml), sorted by file name.

    Raises:
        TemplateError: with one Chinese line per problem, naming the file and the key.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TemplateError([f"表单模板目录 {folder} 不存在"])
    templates, problems = [], []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        template, found = _load_file(path)
        problems += found
        if template:
            templates.append(template)
    seen: dict[str, str] = {}
    for template in templates:
        if template.name in seen:
            problems.append(f"表单模板 {Path(template.source).name}：名称“{template.name}”"
                            f"与 {seen[template.name]} 重复")
        seen.setdefault(template.name, Path(template.source).name)
    if problems:
        raise TemplateError(problems)
    return templates


def _load_file(path: Path) -> tuple[FormTemplate | None, list[str]]:
    where = f"表单模板 {path.name}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return None, [f"{where}：文件不是 UTF-8 编码"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"第 {mark.line + 1} 行" if mark else ""
        return None, [f"{where}：不是有效的 YAML {line}（{getattr(exc, 'problem', exc)}）"]
    template, problems = parse_template(data, where)
    if template:
        template = replace(template, source=str(path))
    return template, problems


def parse_template(data, where: str = "表单模板") -> tuple[FormTemplate | None, list[str]]:
    """A template from its YAML data, or None and the problems found."""
    if not isinstance(data, dict):
        return None, [f"{where}：内容应是一个映射（name、title、columns ……）"]
    problems = [f"{where}：不认识的键“{k}”（可用：{'、'.join(sorted(_TOP_KEYS))}）"
                for k in data if k not in _TOP_KEYS]
    for key in ("name", "title", "columns"):
        if not data.get(key):
            problems.append(f"{where}：缺少“{key}”")
    columns = _columns(data.get("columns") or [], f"{where} columns", problems)
    header = _columns(data.get("header") or [], f"{where} header", problems)
    sequence = _columns([data["sequence"]], f"{where} sequence", problems)[0] if data.get("sequence") else None
    unit = data.get("unit_column")
    if unit is not None and unit not in [c.name for c in columns]:
        problems.append(f"{where}：unit_column“{unit}”不是 columns 中的列名")
    _check_aliases(columns, sequence, where, problems)
    person = data.get("person_key") or []
    if not isinstance(person, list):
        problems.append(f"{where}：person_key 应是列名的列表，例如 [姓名, 手机号]")
        person = []
    for name in person:
        if name not in [c.name for c in columns]:
            problems.append(f"{where}：person_key 中的“{name}”不是 columns 中的列名")
    labels = data.get("total_labels") or DEFAULT_TOTAL_LABELS
    if problems:
        return None, problems
    return FormTemplate(name=str(data["name"]), title=str(data["title"]), columns=tuple(columns),
                        header=tuple(header), sequence=sequence, unit_column=unit,
                        total_labels=tuple(str(x) for x in labels), person_key=tuple(str(x) for x in person)), []


def _columns(items, where: str, problems: list[str]) -> list[Column]:
    if not isinstance(items, list):
        problems.append(f"{where}：应是一个列表")
        return []
    columns = []
    for k, item in enumerate(items, 1):
        column = _column(item, f"{where} 第 {k} 项", problems)
        if column:
            columns.append(column)
    return columns


def _column(item, where: str, problems: list[str]) -> Column | None:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not item.get("name"):
        problems.append(f"{where}：需要 name（列名）")
        return None
    where = f"{where}（{item['name']}）"
    problems += [f"{where}：不认识的键“{k}”" for k in item if k not in _COLUMN_KEYS]
    kind = item.get("type", "text")
    if kind not in TYPES:
        problems.append(f"{where}：类型“{kind}”不认识，可用：{_TYPE_NAMES}")
    aliases = item.get("aliases") or []
    if not isinstance(aliases, list):
        problems.append(f"{where}：aliases 应是一个列表")
        aliases = []
    choices = _choices(item.get("choices"), where, problems)
    if kind == "choice" and not choices:
        problems.append(f"{where}：类型为 choice，但没有 choices（可选项）")
    return Column(name=str(item["name"]), aliases=tuple(str(a) for a in aliases), type=kind,
                  required=bool(item.get("required", False)), choices=choices)


def _choices(raw, where: str, problems: list[str]) -> dict[str, tuple[str, ...]] | None:
    if raw is None:
        return None
    if isinstance(raw, list) and all(isinstance(x, (str, int)) for x in raw):
        return {str(x): () for x in raw}
    if isinstance(raw, dict):
        out = {}
        for name, variants in raw.items():
            if variants is not None and not isinstance(variants, list):
                problems.append(f"{where}：可选项“{name}”的写法应是一个列表")
                continue
            out[str(name)] = tuple(str(v) for v in variants or ())
        return out
    problems.append(f"{where}：choices 应是列表，或“名称: [其他写法]”的映射")
    return None


def _check_aliases(columns: list[Column], sequence: Column | None, where: str, problems: list[str]) -> None:
    owner: dict[str, str] = {}
    for column in (*columns, *((sequence,) if sequence else ())):
        for spelling in (column.name, *column.aliases):
            label = clean_label(spelling)
            if owner.get(label, column.name) != column.name:
                problems.append(f"{where}：表头写法“{spelling}”同时属于“{owner[label]}”和“{column.name}”")
            owner.setdefault(label, column.name)
