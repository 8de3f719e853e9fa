"""Local SMTP sink: accepts every message and saves it as an .eml file, so sent mail can be read.

    python deploy/local/smtp_sink.py --port 1025 --maildir .local/mail
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class SaveToMaildir:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.maildir / f".{name}"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.maildir / name)  # atomic: readers never see half a message
        return "250 Message accepted for delivery"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", default=".local/mail")
    args = parser.parse_args()
    maildir = Path(args.maildir)
    maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(SaveToMaildir(maildir), hostname=args.host, port=args.port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp sink on {args.host}:{args.port}, saving to {maildir}", flush=True)
    await stop.wait()
    controller.stop()


if __name__ == "__main__":
    asyncio.run(main())
