"""Walk the simulated Connect consent page without a browser (tests, scripts, the CLI demo).

It does what a person does: load the page, fill the login, press Allow or Deny, and report where
Smartcar redirects to. Only the simulator's page is understood; real Connect needs a real browser.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import aiohttp


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")


async def consent(
    session: aiohttp.ClientSession,
    authorize_url: str,
    *,
    email: str | None = None,
    approve: bool = True,
) -> str:
    """Open ``authorize_url``, log in as ``email`` (the page's default owner when None), press
    Allow (or Deny) and return the ``Location`` Connect redirects to. Raises ValueError when the
    page refuses the request outright (unknown client or redirect URI)."""
    async with session.get(authorize_url, allow_redirects=False) as resp:
        if resp.status in (301, 302, 303, 307):
            return resp.headers["Location"]  # configuration errors redirect at once
        page = await resp.text()
        if resp.status != 200:
            raise ValueError(f"Connect refused the request: HTTP {resp.status}")
    form = _Form()
    form.feed(page)
    fields = dict(form.fields)
    if email is not None:
        fields["email"] = email
    fields["action"] = "approve" if approve else "deny"
    target = urljoin(authorize_url, form.action or authorize_url)
    async with session.post(target, data=fields, allow_redirects=False) as resp:
        if resp.status not in (301, 302, 303, 307):
            raise ValueError(f"Connect did not redirect: HTTP {resp.status}")
        return resp.headers["Location"]
