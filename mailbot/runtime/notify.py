"""systemd's service notification (sd_notify) without a dependency: one datagram to the socket
named by NOTIFY_SOCKET. READY=1 once the readers and the scheduler run, WATCHDOG=1 from the
event loop (so a stalled loop stops pinging and systemd restarts the service), STOPPING=1 at
the end. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("mailbot.notify")


class Notifier:
    def __init__(self, env: dict | None = None):
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address  # abstract namespace
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
            return True
        except OSError as exc:  # systemd gone or the socket unwritable: the robot goes on
            log.warning("cannot notify systemd at %s (%s)", self.address, exc.__class__.__name__)
            return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog_loop(self, alive=lambda: True) -> None:
        """Ping at half the watchdog interval while `alive()` holds; runs in the event loop itself,
        so a blocked loop misses its pings."""
        if self.watchdog is None:
            return
        while True:
            if alive():
                self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog / 2)
