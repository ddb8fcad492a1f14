"""The unit roster file (单位名册, YAML) edited in place: add, edit, remove and list units
while the office's comments, order and spelling stay as they were (ruamel.yaml round trip).

`mailbot units add/edit/remove/list` call these functions; the web console can call the same
ones. Each edit is checked as the robot would load it (config.Unit, names and aliases unique,
addresses with @) and written atomically (a temporary file, then a rename), so a running robot
never reads half a file; the daemon picks up the change on SIGHUP or its file watch.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mailbot.config import Unit

LIST_FIELDS = ("aliases", "addresses", "domains")
FIELDS = ("name", "category", "parent", *LIST_FIELDS)
Check = Callable[[list[dict]], None]  # the roster as it would be written; raises RosterError to refuse


class RosterError(Exception):
    """An edit that cannot be made; `message` is for people (Chinese)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Change:
    """What an edit did, for the CLI's answer and the log."""

    action: str  # added | changed | removed
    unit: str
    fields: tuple[str, ...] = ()


def _yaml() -> YAML:
    y = YAML()  # round trip: comments, key order, flow style and quotes kept
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long line the office wrote
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _read(path: Path) -> tuple[CommentedMap, CommentedSeq]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RosterError(f"找不到单位名册文件 {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"无法读取单位名册 {path}（{exc.__class__.__name__}）") from None
    try:
        data = _yaml().load(text) if text.strip() else None
    except Exception as exc:  # ruamel's parser and scanner errors
        raise RosterError(f"单位名册 {path} 不是有效的 YAML（{exc.__class__.__name__}），请先修正") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise RosterError(f"单位名册 {path} 的顶层应为一组键值（units: …）")
    units = data.get("units")
    if units is None:
        units = data["units"] = CommentedSeq()
    if not isinstance(units, CommentedSeq):
        raise RosterError(f"单位名册 {path} 中 units 应为列表")
    return data, units


def _write(path: Path, data: CommentedMap) -> None:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _find(units: CommentedSeq, name: str) -> int:
    """The index of the unit named `name` (its name, else one of its aliases)."""
    for by_alias in (False, True):
        for i, unit in enumerate(units):
            if not isinstance(unit, dict):
                continue
            labels = (unit.get("aliases") or []) if by_alias else [unit.get("name")]
            if name in labels:
                return i
    raise RosterError(f"名册中没有名为 {name} 的单位（可用 mailbot units list 查看）")


def _check(units: CommentedSeq, index: int | None, unit: dict) -> None:
    """The unit as the robot would load it, and no name or alias shared with another unit."""
    try:
        Unit.model_validate({k: (list(v) if isinstance(v, list) else v) for k, v in unit.items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise RosterError(f"单位 {unit.get('name')} 的 {key} 不合要求（{_plain(first)}）") from None
    for address in unit.get("addresses") or []:
        if "@" not in str(address):
            raise RosterError(f"{address} 不是邮件地址（缺少 @）")
    mine = [unit.get("name"), *(unit.get("aliases") or [])]
    for i, other in enumerate(units):
        if i == index or not isinstance(other, dict):
            continue
        theirs = [other.get("name"), *(other.get("aliases") or [])]
        shared = [label for label in mine if label in theirs]
        if shared:
            raise RosterError(f"名称或简称 {shared[0]} 已用于 {other.get('name')}")


def _plain(err: dict) -> str:
    kind = err.get("type", "")
    return {"string_too_short": "太短", "missing": "缺少", "extra_forbidden": "不认识这一项",
            "string_type": "应为文字", "list_type": "应为列表"}.get(kind, "取值不合法")


class BreaksConfig(RosterError):
    """The change would give the configuration a problem (a campaign's audience naming a unit
    or category no longer on the roster): the robot would refuse to reload, or to start.
    `message` is that problem."""


def config_check(settings) -> Check:
    """A `check` refusing a roster on which `settings` would get a problem it does not have now."""
    from mailbot import config

    def problems(units) -> set[tuple[str, str]]:
        return {(p.key, p.message) for p in config._campaign_checks("", settings.model_copy(update={"units": units}))}

    before = problems(list(settings.units))

    def check(units: list[dict]) -> None:
        new = sorted(problems([Unit.model_validate(u) for u in units]) - before)
        if new:
            raise BreaksConfig(f"{new[0][1]}（{new[0][0]}）")

    return check


def list_units(path: Path) -> list[dict]:
    """Every unit of the roster as plain data (name, category, parent, aliases, addresses, domains)."""
    _, units = _read(path)
    return _plain_units(units)


def _plain_units(units: CommentedSeq) -> list[dict]:
    out = []
    for unit in units:
        if isinstance(unit, dict):
            out.append({"name": unit.get("name"), "category": unit.get("category", "其他"),
                        "parent": unit.get("parent"),
                        **{f: [str(x) for x in unit.get(f) or []] for f in LIST_FIELDS}})
    return out


def add_unit(path: Path, name: str, category: str | None = None, parent: str | None = None,
             aliases: list[str] = (), addresses: list[str] = (), domains: list[str] = (),
             check: Check | None = None) -> Change:
    """Append a unit at the end of the roster. `check` (each function takes one) may refuse
    the roster as it would then be, e.g. against the rest of the configuration."""
    data, units = _read(path)
    unit = CommentedMap()
    unit["name"] = name
    if aliases:
        unit["aliases"] = _flow(aliases)
    unit["category"] = category or "其他"
    if parent:
        unit["parent"] = parent
    if addresses:
        unit["addresses"] = _flow([a.strip() for a in addresses])
    if domains:
        unit["domains"] = _flow([d.strip().lstrip("@") for d in domains])
    _check(units, None, unit)
    units.append(unit)
    if check is not None:
        check(_plain_units(units))
    _write(path, data)
    return Change("added", name, tuple(unit.keys()))


def edit_unit(path: Path, name: str, *, rename: str | None = None, category: str | None = None,
              parent: str | None = None, add: dict[str, list[str]] | None = None,
              remove: dict[str, list[str]] | None = None, check: Check | None = None) -> Change:
    """Change one unit: new name, category or parent (`parent=""` takes it away); values
    added to or removed from its aliases, addresses and domains (`add`/`remove`: field →
    values). Other keys and every comment stay."""
    data, units = _read(path)
    index = _find(units, name)
    unit = units[index]
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in unit.items()}
    for key, value in (("name", rename), ("category", category), ("parent", parent)):
        if key == "parent" and value == "":
            unit.pop("parent", None)  # no parent any more
        elif value is not None:
            unit[key] = value
    for field, values in (add or {}).items():
        _list_field(field)
        current = unit.get(field)
        if current is None:
            current = unit[field] = _flow([])
        for value in values:
            if value not in current:
                current.append(value)
    for field, values in (remove or {}).items():
        _list_field(field)
        current = unit.get(field) or []
        for value in values:
            if value not in current:
                raise RosterError(f"{unit.get('name')} 的 {field} 中没有 {value}")
            current.remove(value)
    _check(units, index, unit)
    if check is not None:
        check(_plain_units(units))
    changed = tuple(k for k in FIELDS if before.get(k) != (list(unit[k]) if isinstance(unit.get(k), list)
                                                            else unit.get(k)))
    _write(path, data)
    return Change("changed", str(unit.get("name")), changed)


def remove_unit(path: Path, name: str, check: Check | None = None) -> Change:
    """Take a unit off the roster (its past mail and forms stay in the database)."""
    data, units = _read(path)
    index = _find(units, name)
    full = str(units[index].get("name"))
    del units[index]
    if check is not None:
        check(_plain_units(units))
    _write(path, data)
    return Change("removed", full)


def _list_field(field: str) -> None:
    if field not in LIST_FIELDS:
        raise RosterError(f"只能增减 {'、'.join(LIST_FIELDS)}，不能增减 {field}")


def _flow(values) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()  # [a, b] on one line, as the example roster writes lists
    return seq
