"""Notification mail: SMTP (stdlib smtplib, STARTTLS by default) or an `.eml` outbox.

The password is used to log in and nowhere else: not in messages, not in exceptions.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class MailSettings:
    outbox: Path
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = True
    mail_from: str = "ix-pipeline@localhost"


class MailError(RuntimeError):
    pass


def _header_safe(text: str) -> str:
    # Item ids and tags end up in subjects; control characters must not forge headers.
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:300]


def build_message(mail: Mail, mail_from: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = _header_safe(mail.to)
    msg["Subject"] = _header_safe(mail.subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="ix-pipeline.local")
    msg.set_content(mail.body)
    return msg


def send_mail(mail: Mail, settings: MailSettings) -> str:
    """Deliver the mail; returns where it went (an SMTP host or an outbox file path)."""
    msg = build_message(mail, settings.mail_from)
    if not settings.smtp_host:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = settings.outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        try:
            settings.outbox.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(msg))
        except OSError as exc:
            # An outbox that cannot be written is a mail that cannot be sent, like a server
            # that is down: callers handle both as MailError.
            raise MailError(f"could not write the mail to {settings.outbox}: {exc}") from None
        return str(path)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        # The exception text of smtplib never carries the password; say where, not how.
        raise MailError(
            f"could not send mail via {settings.smtp_host}:{settings.smtp_port}: {type(exc).__name__}: {exc}"
        ) from None
    return f"smtp://{settings.smtp_host}:{settings.smtp_port}"
