"""`mailbot web` (serve the staff console) and `mailbot users` (who may sign in to it)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailbot.runtime.clikit import ConfigOpt, database, err, out
from mailbot.runtime.clikit import settings as load_settings

users_app = typer.Typer(no_args_is_help=True, help="网页管理台的用户")


def web(host: str | None = typer.Option(None, "--host", help="监听地址（默认配置中的 web.host）"),
        port: int | None = typer.Option(None, "--port", help="端口（默认配置中的 web.port）"),
        config: Path | None = ConfigOpt) -> None:
    """启动网页管理台（稿件、待处理事项、报表、单位、周报）。"""
    from mailbot.web import app as web_app

    settings = load_settings(config)
    if host or port:
        settings = settings.model_copy(update={"web": settings.web.model_copy(
            update={k: v for k, v in (("host", host), ("port", port)) if v})})
    engine = database(settings)
    out.print(f"网页管理台：http://{settings.web.host}:{settings.web.port}/ （按 Ctrl+C 停止）")
    web_app.serve(settings, engine)


@users_app.command("add")
def users_add(name: str = typer.Argument(..., help="登录用的用户名"),
              role: str = typer.Option(..., "--role", help="operator（管理员）、clerk（科室联络员）或 leader（领导，只读）"),
              department: str | None = typer.Option(None, "--department", help="科室联络员所在科室（键或名称）"),
              password_file: Path | None = typer.Option(None, "--password-file", help="从文件读取密码（第一行）"),
              config: Path | None = ConfigOpt) -> None:
    """添加用户或修改已有用户的角色和密码（密码只存 argon2 散列）。"""
    from sqlmodel import Session

    from mailbot.runtime.opscli import find_department
    from mailbot.web import users

    if role not in users.ROLES:
        err.print(f"不认识的角色 {role}；可用：operator（管理员）、clerk（科室联络员）、leader（领导，只读）")
        raise typer.Exit(2)
    settings = load_settings(config)
    dept_key = None
    if role == "clerk":
        found = find_department(settings, department or "")
        if found is None:
            err.print("科室联络员需要 --department，可用：" + "、".join(f"{d.key}（{d.name}）" for d in settings.departments))
            raise typer.Exit(2)
        dept_key = found.key
    password = _password(password_file)
    if len(password) < 8:
        err.print("密码至少 8 个字符")
        raise typer.Exit(2)
    with Session(database(settings)) as session:
        users.add_user(session, name.strip(), role, password, dept_key)
        session.commit()
    out.print(f"已保存用户 {name}（{users.ROLES[role]}" + (f"，{settings.department(dept_key).name}" if dept_key else "") + "）")


def _password(path: Path | None) -> str:
    if path is not None:
        if not path.is_file():
            err.print(f"找不到密码文件：{path}")
            raise typer.Exit(2)
        lines = path.read_text(encoding="utf-8").splitlines()
        return lines[0].strip() if lines else ""
    first = typer.prompt("密码", hide_input=True)
    if typer.prompt("再输入一次", hide_input=True) != first:
        err.print("两次输入的密码不一样")
        raise typer.Exit(2)
    return first


@users_app.command("list")
def users_list(config: Path | None = ConfigOpt) -> None:
    """列出网页管理台的用户。"""
    from sqlmodel import Session, select

    from mailbot.store import WebUser
    from mailbot.web import users

    settings = load_settings(config)
    with Session(database(settings)) as session:
        rows = session.exec(select(WebUser).order_by(WebUser.name)).all()
    if not rows:
        out.print("还没有用户；请用 mailbot users add 添加。")
    for u in rows:
        dept = f"，{settings.department(u.department).name}" if u.department else ""
        out.print(f"{u.name}  {users.ROLES.get(u.role, u.role)}{dept}" + ("" if u.active else "（已停用）"))
