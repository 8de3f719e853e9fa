"""What the console's fast tests share: a client of the console over the in-memory gateway and store, and
the audit of a page (what a strict CSP forbids, unlabelled controls, duplicate ids)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
from guanxi_console.gateway import InMemoryGateway
from guanxi_console.store import InMemoryConsoleStore
from guanxi_shared.clock import ManualClock

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    def __init__(self, client: httpx.AsyncClient, gateway: InMemoryGateway, clock: ManualClock,
                 store: InMemoryConsoleStore) -> None:
        self.client, self.gateway, self.clock, self.store = client, gateway, clock, store

    async def csrf(self, path: str = "/signin") -> str:
        page = await self.client.get(path)
        found = CSRF.search(page.text)
        assert found, page.text
        return found.group(1)

    async def sign_in(self, subject: str = "alice") -> httpx.Response:
        response = await self.client.post("/signin/dev", data={"subject": subject, "csrf_token": await self.csrf(),
                                                               "next": "/queue"})
        assert response.status_code == 303, response.text
        return response

    async def post_form(self, page_path: str, action: str, data: dict[str, str | list[str]]) -> httpx.Response:
        return await self.client.post(action, data={"csrf_token": await self.csrf(page_path), **data})


class _Audit(HTMLParser):
    """What a strict CSP forbids, found in a page (inline script, inline style, event-handler attributes),
    and form controls without a label."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        values = dict(attrs)
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{k} on <{tag}>" for k in names if k.startswith("on") or k.startswith("hx-on")]
        srcs = [v or "" for k, v in attrs if k in ("src", "href") and tag in ("script", "link")]
        self.problems += [f"{tag} from elsewhere: {s}" for s in srcs if not s.startswith(("/", "data:"))]
        if tag in ("input", "select", "textarea") and values.get("type") not in ("hidden", "submit"):
            self.controls.append(values)
        if tag == "label" and values.get("for"):
            self.labels.add(str(values["for"]))
        if values.get("id"):
            self.ids.append(str(values["id"]))


def audit(html: str) -> list[str]:
    parser = _Audit()
    parser.feed(html)
    unlabelled = [c.get("name") for c in parser.controls if c.get("id") not in parser.labels]
    duplicates = sorted({i for i in parser.ids if parser.ids.count(i) > 1})
    return (parser.problems + [f"control without a label: {n}" for n in unlabelled]
            + [f"id used twice: {i}" for i in duplicates])
