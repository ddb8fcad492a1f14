"""Backup and restore of one robot: the database (SQLite's online backup API, or pg_dump), the
storage folder (raw mail, stored files, the review secret) and the configuration files, with a
manifest of sha256 sums that `restore` checks before it touches anything.

Layout of a backup folder:
    manifest.json          what, when, which schema revision, every file's sha256 and size
    database/mailbot.db    SQLite (a consistent copy taken while the robot may run)
    database/mailbot.pgdump  or PostgreSQL (pg_dump custom format, no owners)
    storage/…              the storage folder, minus an SQLite database inside it
    config/…               mailbot.yaml and the roster, forms and holidays it names (not restored:
                           the target's own configuration says where things go)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import URL

from mailbot.store import schema

FORMAT = 1
SQLITE_FILE = "database/mailbot.db"
PG_FILE = "database/mailbot.pgdump"


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message is one Chinese sentence."""


@dataclass
class Summary:
    folder: Path
    backend: str
    files: int
    bytes: int
    revision: str | None


# --- backup -----------------------------------------------------------------------------


def backup(settings, config_file: Path, engine, target: Path, now: datetime) -> Summary:
    """Write a complete backup into `target` (new or empty). Safe while the daemon runs."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"备份目录 {target} 不是空的，请换一个新目录")
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)  # the storage holds the review secret and people's mail
    url = engine.url
    revision = schema.current_revision(engine)
    if url.get_backend_name() == "sqlite":
        backend = "sqlite"
        _sqlite_copy(Path(url.database), target / SQLITE_FILE)
    else:
        backend = "postgresql"
        _pg_dump(url, target / PG_FILE)
    skip = {Path(url.database).resolve()} if backend == "sqlite" else set()
    skip |= {Path(f"{p}{suffix}") for p in skip for suffix in ("-wal", "-shm", "-journal")}
    _copy_tree(settings.storage, target / "storage", skip)
    for source, name in _config_files(settings, config_file):
        _copy_tree(source, target / "config" / name, set()) if source.is_dir() else _copy_file(
            source, target / "config" / name)
    files = _hash_all(target)
    manifest = {"format": FORMAT, "created_at": now.isoformat(timespec="seconds"), "backend": backend,
                "database": SQLITE_FILE if backend == "sqlite" else PG_FILE, "schema_revision": revision,
                "pg_schema": _pg_schema(url) if backend == "postgresql" else None,
                "storage": str(settings.storage.resolve()), "config": str(config_file.resolve()), "files": files}
    (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
    return Summary(target, backend, len(files), sum(f["size"] for f in files.values()), revision)


def _sqlite_copy(source: Path, dest: Path) -> None:
    if not source.exists():
        raise BackupError(f"找不到数据库文件 {source}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(dest)
    try:
        with dst:
            src.backup(dst)  # the online backup API: a consistent copy while writers go on
    finally:
        dst.close()
        src.close()


def _libpq(url: URL) -> tuple[str, dict]:
    """A libpq URI without the password (it travels in PGPASSWORD, not on the command line)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_schema(url: URL) -> str | None:
    """The schema named by `options=-csearch_path=NAME` in the URL, if any."""
    options = url.query.get("options")
    for part in (options if isinstance(options, tuple) else (options or "",)):
        for word in part.split():
            if word.startswith("-csearch_path="):
                return word.split("=", 1)[1].split(",")[0]
    return None


def _run_pg(args: list[str], env: dict) -> None:
    tool = args[0]
    if shutil.which(tool) is None:
        raise BackupError(f"找不到 {tool}：请安装 Debian 的 postgresql-client 软件包（apt-get install postgresql-client）")
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise BackupError(f"{tool} 失败：{lines[-1] if lines else done.returncode}")


def _pg_dump(url: URL, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    uri, env = _libpq(url)
    name = _pg_schema(url)
    _run_pg(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dest}",
             *([f"--schema={name}"] if name else []), f"--dbname={uri}"], env)


def _config_files(settings, config_file: Path) -> list[tuple[Path, str]]:
    found = [(config_file, "mailbot.yaml")]
    for path, name in ((settings.roster, "roster"), (settings.forms_folder, "forms"),
                       (settings.calendar.holidays_folder, "holidays")):
        if path is not None and Path(path).exists():
            found.append((Path(path), name if Path(path).is_dir() else f"{name}{Path(path).suffix}"))
    return found


def _copy_file(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, dest)


def _copy_tree(source: Path, dest: Path, skip: set[Path]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        return
    for root, dirs, names in os.walk(source):
        dirs.sort()
        rel = Path(root).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(names):
            path = Path(root) / name
            if path.resolve() in skip or not path.is_file():
                continue
            shutil.copy2(path, dest / rel / name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_all(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): {"sha256": _sha256(p), "size": p.stat().st_size}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"}


# --- restore ----------------------------------------------------------------------------


def read_manifest(source: Path) -> dict:
    try:
        manifest = json.loads((source / "manifest.json").read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{source} 里没有 manifest.json，不是 mailbot backup 做的备份") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"无法读取 {source / 'manifest.json'}：{exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"备份格式 {manifest.get('format')} 不认识（这个版本只认 {FORMAT}）")
    return manifest


def verify(source: Path, manifest: dict) -> list[str]:
    """Files missing or changed since the backup was made (empty: intact)."""
    bad = []
    for rel, info in manifest["files"].items():
        path = source / rel
        if not path.is_file():
            bad.append(f"缺少 {rel}")
        elif path.stat().st_size != info["size"] or _sha256(path) != info["sha256"]:
            bad.append(f"{rel} 与备份时不一致（sha256 不符）")
    return bad


def restore(settings, engine, source: Path, force: bool = False) -> Summary:
    """Restore a backup into the instance of `settings`, whose database and storage must be
    empty (or `force`). Checks every sha256 first; then the schema is brought to the code's head."""
    manifest = read_manifest(source)
    bad = verify(source, manifest)
    if bad:
        raise BackupError(f"备份已损坏，没有恢复任何内容：{'；'.join(bad[:5])}" + ("……" if len(bad) > 5 else ""))
    backend = "sqlite" if engine.url.get_backend_name() == "sqlite" else "postgresql"
    if backend != manifest["backend"]:
        raise BackupError(f"备份来自 {manifest['backend']} 数据库，不能恢复到 {backend} 数据库")
    if not force:
        _refuse_if_used(settings, engine)
    engine.dispose()
    if backend == "sqlite":
        dest = Path(engine.url.database)
        dest.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        _sqlite_copy(source / manifest["database"], dest)
    else:
        _pg_restore(engine.url, source / manifest["database"], force)
    _copy_tree(source / "storage", settings.storage, set())
    schema.upgrade(engine)  # a backup of an older version comes up to this one
    files = [rel for rel in manifest["files"] if rel.startswith("storage/")]
    return Summary(source, backend, len(files), sum(manifest["files"][r]["size"] for r in files),
                   manifest.get("schema_revision"))


def _refuse_if_used(settings, engine) -> None:
    sqlite = engine.url.get_backend_name() == "sqlite"
    if sqlite and not Path(engine.url.database).exists():
        tables = []
    else:
        tables = _tables(engine)
    if tables:
        raise BackupError("要恢复到的数据库里已经有数据；请换一个空数据库，或确认要覆盖时加 --force")
    storage = settings.storage
    db_file = Path(engine.url.database).resolve() if sqlite else None
    if storage.exists() and any(p for p in storage.iterdir() if p.resolve() != db_file):
        raise BackupError(f"存储目录 {storage} 不是空的；请换一个空目录，或确认要覆盖时加 --force")


def _tables(engine) -> list[str]:
    try:
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    except Exception as exc:
        raise BackupError(f"无法连接要恢复到的数据库：{exc.__class__.__name__}") from None
    return tables


def _pg_restore(url: URL, dump: Path, force: bool) -> None:
    uri, env = _libpq(url)
    if force:  # drop what the dump creates before creating it again
        args = ["pg_restore", "--clean", "--if-exists"]
    else:
        args = ["pg_restore"]
    _run_pg([*args, "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={uri}", str(dump)], env)

