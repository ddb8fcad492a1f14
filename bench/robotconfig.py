"""The robot configuration the benchmarks write, kept valid in one place.

The office's three departments and its routing rules (as in config/mailbot.example.yaml and
the test suite), and `write()`, which dumps a config and loads it back with
`mailbot.config.load`, the checks `mailbot check-config` and `mailbot run` make. A config the
robot would refuse stops the benchmark at once, naming this file, instead of failing inside
the robot's child process after the corpus is seeded.

Used by bench/ingest.py and bench/latency.py (bench/digest.py loads its config the same way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import yaml

DEPT_BOXES = ("skxkpb", "skxxhb", "skxdxb")
DEPARTMENTS = [
    {"key": "kepu", "name": "科普部", "prefix": "KP", "mailbox": "skxkpb", "sender_name": "临沂市科协科普部"},
    {"key": "xuehui", "name": "学会部", "prefix": "XH", "mailbox": "skxxhb", "sender_name": "临沂市科协学会部"},
    {"key": "diaoxuan", "name": "调宣部", "prefix": "DX", "mailbox": "skxdxb", "sender_name": "临沂市科协调宣部"},
]
# routing.default and routing.unknown name a department explicitly: the config does not lean on
# the code's defaults, which must name a configured department (check-config).
ROUTING = {"default": "diaoxuan", "unknown": "diaoxuan", "rules": [
    {"name": "科普基地、农技协", "categories": ["科普基地", "农技协"], "department": "kepu"},
    {"name": "学会、协会、研究会、企事业科协", "categories": ["学会", "协会", "研究会", "企事业科协"], "department": "xuehui"},
    {"name": "各级科协科普活动信息", "categories": ["县区科协"], "keywords": ["科普日", "科普活动"], "department": "kepu"},
]}


class InvalidBenchConfig(SystemExit):
    pass


def departments(mailboxes: Iterable[str]) -> list[dict]:
    """The three departments; each keeps its own mailbox only where the config has that mailbox
    (a department without one sends from the first mailbox)."""
    have = set(mailboxes)
    out = []
    for dept in DEPARTMENTS:
        dept = dict(dept)
        if dept["mailbox"] not in have:
            del dept["mailbox"]
        out.append(dept)
    return out


def write(data: dict, path: Path) -> Path:
    """Write the config as YAML and load it back as the robot will; stop if it is invalid."""
    from mailbot.config import ConfigError, load

    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        load(path)
    except ConfigError as exc:
        print(f"\n*** BENCHMARK FAILED: the config the benchmark wrote ({path}) is not valid for this "
              f"version of mailbot; update bench/robotconfig.py or the benchmark:\n"
              + "\n".join(f"  - {p}" for p in exc.problems), file=sys.stderr, flush=True)
        raise InvalidBenchConfig(1) from None
    return path
