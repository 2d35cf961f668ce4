"""Who may use ``rbv serve``: the person who started it, as in Jupyter.

Photos are private, and on a shared machine every local user can reach a port on the
loopback. So the URL ``rbv serve`` prints carries a secret key (``?token=…``); the first
visit with it trades it for a cookie (``HttpOnly``: no script reads it; ``SameSite=
Strict``: another site's page never sends it) and is sent on to the same address
without the key, so the key leaves the address bar and the history. Every other
request, pages, images and API alike, is refused without that cookie, with a page
saying to open the printed URL. The key is printed once, on the start line, and never
logged; ``Referrer-Policy: no-referrer`` keeps it out of Referer headers.
"""

from __future__ import annotations

import html
import secrets
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Scope

KEY_PARAMETER = "token"
NO_STORE = {"Cache-Control": "no-store"}

REFUSED = ("Open the address that `rbv serve` printed when it started (it ends in "
           "?token=…): this library is only for the person who started the server.")


class Access:
    """The secret of one server run: the key in its printed URL and the session its
    cookie carries (both new at each start, so a restart signs every browser out)."""

    def __init__(self, port: int) -> None:
        self.key = secrets.token_urlsafe(32)
        self.session = secrets.token_urlsafe(32)
        # one cookie per port: two servers on one machine (one host for cookies) do
        # not sign each other's browsers out
        self.cookie = f"rbv-session-{port}"

    def url(self, base: str) -> str:
        """``base`` (the server's root URL) with the key: the URL to print and open."""
        return f"{base}?{urlencode({KEY_PARAMETER: self.key})}"

    def check(self, scope: Scope) -> Response | None:
        """None when the request may go on (it carries the session cookie); else the
        answer: the redirect that sets the cookie (the key was given), or a refusal."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        keys = [v for k, v in query if k == KEY_PARAMETER]
        if keys and scope["method"] in ("GET", "HEAD"):
            if len(keys) == 1 and secrets.compare_digest(keys[0].encode(), self.key.encode()):
                return self._sign_in(scope, [(k, v) for k, v in query if k != KEY_PARAMETER])
            return refusal(scope, "wrong or outdated key in the address (the server was "
                                  "restarted?)")
        if self._signed_in(Headers(scope=scope)):
            return None
        return refusal(scope, "not signed in")

    def _signed_in(self, headers: Headers) -> bool:
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except CookieError:
            return False
        sent = jar.get(self.cookie)
        return sent is not None and secrets.compare_digest(sent.value.encode(),
                                                           self.session.encode())

    def _sign_in(self, scope: Scope, rest: list[tuple[str, str]]) -> Response:
        target = quote(scope["path"]) + (f"?{urlencode(rest)}" if rest else "")
        answer = RedirectResponse(target, 303, headers=NO_STORE)
        answer.set_cookie(self.cookie, self.session, path="/", httponly=True,
                          samesite="strict")
        return answer


def refusal(scope: Scope, why: str) -> Response:
    """403 for a request without the session: a short page (for a browser) or one JSON
    line (for a script's POST), needing nothing (no database, no static file)."""
    if scope["method"] not in ("GET", "HEAD"):
        return JSONResponse({"ok": False, "error": f"{why}: {REFUSED}"}, 403,
                            headers={"Connection": "close", **NO_STORE})
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>rbv serve: open the printed address</title></head><body>"
            f"<h1>Open the address rbv serve printed</h1><p>{html.escape(REFUSED)}</p>"
            f"<p>({html.escape(why)})</p></body></html>")
    return HTMLResponse(page, 403, headers=NO_STORE)
