"""`mailbot check-config --connect`: log in to every mailbox's IMAP server and its SMTP
server, and say for each whether it works and, if not, why (in Chinese)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from mailbot import ingest
from mailbot.config import ConfigError, Mailbox, Settings


@dataclass(frozen=True)
class Check:
    mailbox: str
    service: str  # "IMAP" or "SMTP"
    where: str  # host:port
    ok: bool
    message: str  # what was found, for people


def _password(box: Mailbox) -> tuple[str | None, str | None]:
    try:
        return box.password(), None
    except ConfigError as exc:
        return None, exc.problems[0].message
    except OSError as exc:
        return None, f"无法读取密码文件 {box.password_file}（{exc.strerror or exc.__class__.__name__}）"


def check_imap(box: Mailbox) -> Check:
    where = f"{box.host}:{box.port}"
    password, problem = _password(box)
    if problem:
        return Check(box.name, "IMAP", where, False, problem)
    try:
        client = ingest.connect(box, password)
    except ingest.MailboxError as exc:
        return Check(box.name, "IMAP", where, False, exc.message)
    try:
        client.select_folder(box.folder, readonly=True)
    except Exception as exc:  # noqa: BLE001 - any refusal is reported, with its kind
        ingest.close(client)
        return Check(box.name, "IMAP", where, False,
                     f"邮箱 {box.name}：登录成功，但无法打开文件夹 {box.folder}（{exc.__class__.__name__}）")
    ingest.close(client)
    return Check(box.name, "IMAP", where, True, f"登录成功（用户 {box.user}，文件夹 {box.folder}）")


async def _smtp(box: Mailbox, password: str | None, timeout: float) -> None:
    context = ssl.create_default_context()
    if not box.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    smtp = aiosmtplib.SMTP(hostname=box.smtp_server, port=box.smtp_port, use_tls=box.smtp_tls == "implicit",
                           start_tls=box.smtp_tls == "starttls", tls_context=context, timeout=timeout)
    await smtp.connect()
    try:
        if box.smtp_auth:
            await smtp.login(box.user, password or "")
    finally:
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            pass


def check_smtp(box: Mailbox, timeout: float = 30.0) -> Check:
    where = f"{box.smtp_server}:{box.smtp_port}"
    password = None
    if box.smtp_auth:
        password, problem = _password(box)
        if problem:
            return Check(box.name, "SMTP", where, False, problem)
    try:
        asyncio.run(_smtp(box, password, timeout))
    except aiosmtplib.SMTPAuthenticationError as exc:
        why = f"用户名或密码（授权码）不正确，服务器拒绝登录（{exc.code}，用户 {box.user}）"
    except aiosmtplib.SMTPConnectError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, socket.gaierror):
            why = f"找不到服务器 {box.smtp_server}"
        elif isinstance(cause, ConnectionRefusedError):
            why = f"无法连接 {where}（连接被拒绝，服务器没有在该端口监听）"
        else:
            why = f"无法连接 {where}"
    except (aiosmtplib.SMTPConnectTimeoutError, aiosmtplib.SMTPTimeoutError, asyncio.TimeoutError):
        why = f"连接 {where} 超时"
    except aiosmtplib.SMTPResponseException as exc:
        why = f"服务器拒绝（{exc.code}）"
    except (aiosmtplib.SMTPException, ssl.SSLError) as exc:
        why = f"与 {where} 的连接失败（{exc.__class__.__name__}），请检查 smtp_tls 设置"
    except socket.gaierror:
        why = f"找不到服务器 {box.smtp_server}"
    except OSError as exc:
        why = f"无法连接 {where}（{exc.strerror or exc.__class__.__name__}）"
    else:
        return Check(box.name, "SMTP", where, True,
                     "登录成功" + (f"（用户 {box.user}）" if box.smtp_auth else "（不需要登录）"))
    return Check(box.name, "SMTP", where, False, f"邮箱 {box.name} 的发信服务器：{why}")


def check_all(settings: Settings) -> list[Check]:
    """Every mailbox's IMAP and SMTP, in the config's order."""
    checks = []
    for box in settings.mailboxes:
        checks.append(check_imap(box))
        checks.append(check_smtp(box, settings.outbox.timeout))
    return checks
