"""What reading one form file gives: rows keyed by canonical column, errors, warnings.

`FormResult.to_json()` is the contract of `mailbot forms check FILE --json`
(tests/contract/forms.schema.json).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FormRow:
    """One data row: normalised values, the cells as written, and where it came from."""

    index: int  # 1-based among data rows
    values: dict
    raw: dict
    source: dict


@dataclass(frozen=True)
class FormError:
    row_index: int
    source_row: int | None
    column: str
    value: str | None
    message: str  # e.g. 第3行 关注人数 “三百多” 不是数字


@dataclass
class FormResult:
    """A form as read: `rows`, `sources` and `errors` in file order; never raised, always returned."""

    template: str | None = None
    form_type: str | None = None
    format: str = "unknown"
    columns: list[str] = field(default_factory=list)
    header: dict = field(default_factory=dict)
    header_raw: dict = field(default_factory=dict)
    items: list[FormRow] = field(default_factory=list)
    total: dict | None = None
    errors: list[FormError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    filename: str = ""
    unit_column: str | None = None

    @property
    def rows(self) -> list[dict]:
        return [item.values for item in self.items]

    @property
    def sources(self) -> list[dict]:
        return [item.source for item in self.items]

    @property
    def ok(self) -> bool:
        """Recognised, with rows, and no cell errors."""
        return bool(self.template and self.items and not self.errors)

    def to_dict(self) -> dict:
        """The JSON contract as a dict (plus `filename` and `unit_column`)."""
        return {
            "template": self.template, "form_type": self.form_type, "format": self.format,
            "columns": list(self.columns), "header": dict(self.header), "header_raw": dict(self.header_raw),
            "rows": self.rows, "sources": self.sources, "total": self.total,
            "errors": [asdict(e) for e in self.errors], "warnings": list(self.warnings),
            "filename": self.filename, "unit_column": self.unit_column,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)
