"""Message catalogues (gettext ``.po`` files under ``locales/``, compiled in memory at start) and the
formatting of dates and times in the viewer's language and time zone."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from .domain import countdown_parts
from .settings import LOCALES

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"


def babel_name(locale: str) -> str:
    return locale.replace("-", "_")


def load_translations(locale: str, directory: Path = LOCALES_DIR) -> Translations:
    """The compiled catalogue of ``locale`` (English msgids: an untranslated one shows as written)."""
    po = directory / babel_name(locale) / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as handle:
        catalogue = read_po(handle, locale=babel_name(locale), domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def load_all(directory: Path = LOCALES_DIR) -> dict[str, Translations]:
    return {locale: load_translations(locale, directory) for locale in LOCALES}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


class Formatter:
    """Dates, times and countdowns for one viewer: their language and time zone."""

    def __init__(self, locale: str, timezone: str, translations: Translations) -> None:
        self.locale = Locale.parse(babel_name(locale))
        self.tz = zone(timezone)
        self.t = translations

    def when(self, moment: datetime | None) -> str:
        """Medium date and time, in the viewer's zone (``<time>`` shows the exact one on hover)."""
        if moment is None:
            return ""
        return format_datetime(moment, "medium", tzinfo=self.tz, locale=self.locale)

    def day(self, moment: datetime | None) -> str:
        """The date alone (medium), in the viewer's zone."""
        if moment is None:
            return ""
        return format_date(moment.astimezone(self.tz), "medium", locale=self.locale)

    def exact(self, moment: datetime | None) -> str:
        """The exact timestamp with its offset and zone: the ``title`` of a ``<time>``."""
        if moment is None:
            return ""
        local = moment.astimezone(self.tz)
        return f"{local.isoformat(timespec='seconds')} ({self.tz.key})"

    def countdown(self, seconds: float | None) -> str:
        """The first paint of a countdown; ``countdown.js`` keeps it current with the same wording."""
        if seconds is None:
            return ""
        breached, days, hours, minutes = countdown_parts(seconds)
        parts = []
        if days:
            parts.append(self.t.gettext("%(n)dd") % {"n": days})
        if days or hours:
            parts.append(self.t.gettext("%(n)dh") % {"n": hours})
        parts.append(self.t.gettext("%(n)dm") % {"n": minutes})
        text = " ".join(parts)
        return (self.t.gettext("overdue by %(time)s") if breached else self.t.gettext("%(time)s left")) % {"time": text}
