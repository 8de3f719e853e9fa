"""Every string the console shows comes from the catalogues, and the Chinese one translates them all."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from guanxi_console import i18n

ROOT = Path(__file__).resolve().parents[1]
METHODS = [("guanxi_console/**.py", "python"), ("guanxi_console/templates/**.html", "jinja2")]
OPTIONS = {"guanxi_console/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "True",
                                                 "lstrip_blocks": "True"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "t": None}


def extracted() -> set[str]:
    found = extract_from_dir(str(ROOT), METHODS, OPTIONS, KEYWORDS)
    return {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}


def catalogue(locale: str) -> dict[str, str]:
    path = i18n.LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return {m.id: str(m.string) for m in read_po(handle) if m.id and isinstance(m.id, str)}


def test_the_chinese_catalogue_translates_every_message() -> None:
    messages = extracted()
    zh = catalogue("zh_CN")
    assert len(messages) > 100
    missing = sorted(m for m in messages if not zh.get(m))
    assert not missing, f"add these to locales/zh_CN (pybabel extract + update, see the README): {missing}"
    english = catalogue("en")
    assert not sorted(messages - set(english)), "run pybabel update for locales/en too"


def test_placeholders_survive_translation() -> None:
    import re

    for msgid, msgstr in catalogue("zh_CN").items():
        assert sorted(re.findall(r"%\(\w+\)[sd]", msgid)) == sorted(re.findall(r"%\(\w+\)[sd]", msgstr)), msgid


def test_catalogues_compile_at_start() -> None:
    loaded = i18n.load_all()
    assert loaded["zh-CN"].gettext("My queue") == "我的工作队列"
    assert loaded["en"].gettext("My queue") == "My queue"
