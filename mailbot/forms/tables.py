"""A Document and the templates → the form's header fields, data rows, total and errors.

The form is recognised by its column headers (best match over all templates), never by the
file name. Tables split over pages continue the first one, with or without a repeated header.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mailbot.forms.readers import MERGED, Document, Grid
from mailbot.forms.result import FormError, FormResult, FormRow
from mailbot.forms.templates import FormTemplate
from mailbot.forms.values import clean_label, display, normalise

HEADER_SEARCH_ROWS = 15
_NOTE = re.compile(r"^(注|备注|说明|填表说明|附注)\s*\d*\s*[:：.、]|^(填表人|填报人|联系人|联系电话|审核人|负责人|"
                   r"单位负责人|制表人|分管领导|经办人)")
_SEAL = re.compile(r"[(（]\s*(盖章|公章|签章|签字|盖公章)\s*[)）]")


@dataclass
class HeaderMatch:
    """Where a template's columns sit in one grid: header row index and column spans."""

    row: int  # index of the (lower) header row; -1 for a continuation table without header
    spans: dict[str, tuple[int, int]]  # canonical column (sequence included) → [start, end)
    unknown: list[str]
    score: tuple

    def matched(self, template: FormTemplate) -> int:
        return sum(1 for c in template.columns if c.name in self.spans)


def _minimum(template: FormTemplate) -> int:
    n = len(template.columns)
    return max(min(2, n), math.ceil(n / 2))


def match_grid(template: FormTemplate, grid: Grid) -> HeaderMatch | None:
    """The best header row of `grid` for `template`, if enough columns are found there."""
    best = None
    for i, row in enumerate(grid.rows[:HEADER_SEARCH_ROWS]):
        match = _match_row(template, row, grid.rows[i - 1] if i else None, i)
        if best is None or match.score > best.score:
            best = match
    if best is None or best.matched(template) < _minimum(template):
        return None
    if template.unit_column and template.unit_column not in best.spans:
        return None
    return best


def _match_row(template: FormTemplate, row: list, upper: list | None, i: int) -> HeaderMatch:
    spans: dict[str, tuple[int, int]] = {}
    unknown, upper_used = [], 0
    for c, value in enumerate(row):
        if value is MERGED:
            continue
        end = c + 1
        while end < len(row) and row[end] is MERGED:
            end += 1
        name = template.find_column(value) if value is not None else None
        above = upper[c] if upper is not None and c < len(upper) else None
        if name is None and above is not None and above is not MERGED:
            name = template.find_column(above)
            upper_used += name is not None
        if name and name not in spans:
            spans[name] = (c, end)
        elif name is None and display(value):
            unknown.append(display(value))
    matched = sum(1 for col in template.columns if col.name in spans)
    return HeaderMatch(i, spans, unknown, (matched, -upper_used, -i))


def choose_template(templates: list[FormTemplate], grids: list[Grid]):
    """(template, {id(grid): HeaderMatch}) for the template whose columns fit best, or None."""
    best = None
    for template in templates:
        matches = {id(g): m for g in grids if (m := match_grid(template, g))}
        if not matches:
            continue
        top = max(m.matched(template) for m in matches.values())
        key = (top / len(template.columns), top)
        if best is None or key > best[0]:
            best = (key, template, matches)
    return None if best is None else best[1:]


def fill_result(result: FormResult, document: Document, templates: list[FormTemplate], today=None) -> None:
    """Recognise the form in `document` and put header, rows, total and problems into `result`."""
    grids = [b for b in document.blocks if isinstance(b, Grid)]
    chosen = choose_template(templates, grids)
    if chosen is None:
        result.warnings.append(_unrecognised(grids, templates))
        return
    template, matches = chosen
    result.template, result.form_type = template.name, template.title
    result.columns, result.unit_column = template.column_names, template.unit_column
    before, after, data = _layout(document.blocks, matches)
    _check_columns(template, data[0][1], result)
    _read_rows(template, data, today, result, after)
    _read_header(template, before, after, today, result)


def _unrecognised(grids: list[Grid], templates: list[FormTemplate]) -> str:
    names = "、".join(t.name for t in templates) or "（无）"
    for grid in grids:
        for row in grid.rows[:HEADER_SEARCH_ROWS]:
            labels = [display(v) for v in row if v is not MERGED and display(v)]
            if len(labels) >= 2:
                return f"没有认出是哪一种统计表（表头：{'、'.join(labels)}）；已有的模板：{names}"
    return f"文件中没有找到表格；已有的模板：{names}"


def _layout(blocks: list, matches: dict):
    """Lines before the form, lines after it, and the data grids with their header matches."""
    before, after, data = [], [], []
    for block in blocks:
        lines = after if data else before
        if isinstance(block, str):
            lines.append(block)
            continue
        match = matches.get(id(block))
        if match is None and data and block.continuable and block.width == data[-1][0].width:
            match = HeaderMatch(-1, data[-1][1].spans, [], ())
        if match is None:
            lines.extend(_grid_lines(block.rows))
            continue
        if not data:
            before.extend(_grid_lines(block.rows[:max(match.row, 0)]))
        data.append((block, match))
    return before, after, data


def _row_text(row: list) -> str:
    return "\t".join(display(v) for v in row if v is not MERGED and display(v))


def _grid_lines(rows: list[list]) -> list[str]:
    """Rows as text lines for finding header fields; a cell's own line breaks split lines too."""
    return [line for row in rows for line in _row_text(row).splitlines() if line.strip()]


def _check_columns(template: FormTemplate, match: HeaderMatch, result: FormResult) -> None:
    for column in template.columns:
        if column.name not in match.spans:
            result.warnings.append(f"表格中没有找到“{column.name}”列")
    for label in match.unknown:
        result.warnings.append(f"表格中的“{label}”列不在模板“{template.name}”中，已忽略")


def _pick(row: list, span: tuple[int, int]):
    for value in row[span[0]:span[1]]:
        if value is not None and value is not MERGED:
            return value
    return None


def _row_kind(template: FormTemplate, row: list, cells: dict) -> str:
    """data, blank, total, subtotal, header (repeated), or note (a remark under the table)."""
    texts = [v for v in row if v is not None and v is not MERGED and display(v)]
    if not texts:
        return "blank"
    labels = {clean_label(v) for v in texts if isinstance(v, str)}
    if labels & {clean_label(t) for t in template.total_labels}:
        return "total"
    if "小计" in labels:
        return "subtotal"
    named = {template.find_column(v) for v in texts if isinstance(v, str)}
    if sum(1 for c in template.columns if c.name in named) >= _minimum(template):
        return "header"
    if isinstance(texts[0], str) and _NOTE.match(texts[0].strip()):
        return "note"
    if all(cells.get(c.name) is None for c in template.columns):
        return "note" if any(isinstance(v, str) and not v.strip().isdigit() for v in texts) else "blank"
    return "data"


def _read_rows(template: FormTemplate, data: list, today, result: FormResult, after: list) -> None:
    total_cells = None
    for grid, match in data:
        for i in range(match.row + 1, len(grid.rows)):
            row = grid.rows[i]
            cells = {name: _pick(row, span) for name, span in match.spans.items()}
            kind = _row_kind(template, row, cells)
            if kind == "total":
                total_cells = cells
            elif kind == "note":
                after.extend(_grid_lines([row]))
            elif kind == "data":
                result.items.append(_data_row(template, cells, len(result.items) + 1, grid.source(i), today,
                                              result.errors))
                _beyond_header(grid, match, row, len(result.items), result.warnings)
    if total_cells is not None:
        result.total = _total(template, total_cells, result)


def _beyond_header(grid, match, row: list, index: int, warnings: list) -> None:
    """Cells right of the header's last column (no heading at all): an extra column, or a
    number whose thousands comma split it in two (1,024 in a CSV without quotes)."""
    if match.row < 0:
        return
    heading = grid.rows[match.row]
    end = max((c + 1 for c, v in enumerate(heading) if v is not None and v is not MERGED and display(v)), default=0)
    extra = [display(v) for v in row[end:] if v is not None and v is not MERGED and display(v)]
    if end and extra:
        warnings.append(f"第{index}行在表头以外还有内容（{'、'.join(extra)}）：可能多写了一列，"
                        f"或数字中的逗号把一个数分成了两格，请核对")


def _data_row(template: FormTemplate, cells: dict, index: int, source: dict, today, errors: list) -> FormRow:
    values, raw = {}, {}
    source_row = source.get("row", source.get("line"))
    for column in template.columns:
        cell = cells.get(column.name)
        raw[column.name] = display(cell)
        value, problem = normalise(cell, column.type, column.choices, today=today)
        if problem:
            errors.append(FormError(index, source_row, column.name, display(cell), f"第{index}行 {column.name} {problem}"))
        elif value is None and column.required and column.name in cells:
            errors.append(FormError(index, source_row, column.name, None, f"第{index}行 {column.name} 未填写"))
        values[column.name] = value
    return FormRow(index, values, raw, source)


def _total(template: FormTemplate, cells: dict, result: FormResult) -> dict:
    """The 合计 row as the file states it, per integer column; a warning when it does not add up."""
    total = {}
    for column in template.columns:
        if column.type != "integer":
            continue
        stated, problem = normalise(cells.get(column.name), "integer")
        if problem:
            result.warnings.append(f"合计行 {column.name} {problem}")
        total[column.name] = stated
        # An invalid cell explains a difference; an empty one counts as 0.
        wrong = any(e.column == column.name and e.value is not None for e in result.errors)
        added = sum(r.values[column.name] or 0 for r in result.items)
        if stated is not None and not wrong and stated != added:
            result.warnings.append(f"合计行 {column.name} 写的是 {stated}，各行相加是 {added}")
    return total


def _read_header(template: FormTemplate, before: list, after: list, today, result: FormResult) -> None:
    """Header fields (填报单位：… 填报时间：…): nearest above the table first, then below it."""
    found = _header_candidates(template, [*reversed(before), *after])
    for field in template.header:
        raw = found.get(field.name)
        result.header_raw[field.name] = raw
        text = _SEAL.sub("", raw).strip() if raw else None
        value, problem = normalise(text, field.type, field.choices, today=today)
        if problem:
            result.warnings.append(f"{field.name} {problem}")
        result.header[field.name] = value


def _header_candidates(template: FormTemplate, lines: list[str]) -> dict[str, str]:
    pattern, names = _field_pattern(template)
    found: dict[str, str] = {}
    for line in lines:
        hits = list(pattern.finditer(line))
        for k, hit in enumerate(hits):
            name = names[hit.lastgroup]
            end = hits[k + 1].start() if k + 1 < len(hits) else len(line)
            value = line[hit.end():end].strip().strip(" \t\u3000:：,，;；|")
            if value or name not in found:
                found[name] = found.get(name) or value
    return found


def _field_pattern(template: FormTemplate):
    spellings = {}
    for field in template.header:
        for spelling in (field.name, *field.aliases):
            core = re.sub(r"[(（][^()（）]*[)）]$", "", spelling.strip())
            spellings.setdefault(core, field.name)
    names, parts = {}, []
    for k, core in enumerate(sorted(spellings, key=len, reverse=True)):
        names[f"f{k}"] = spellings[core]
        parts.append(f"(?P<f{k}>" + r"\s*".join(map(re.escape, core)) + ")")
    label = "|".join(parts) or "(?!)"
    pattern = rf"(?:^|(?<=[\s,，;；|]))(?:{label})\s*(?:[(（][^()（）]{{0,8}}[)）])?\s*(?:[:：]|(?=\s)|$)"
    return re.compile(pattern), names
