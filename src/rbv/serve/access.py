"""Who may use ``rbv serve``: the person who started it, as in Jupyter.

Photos are private, and on a shared machine every local user can reach a port on the
loopback. Two secrets, both new at each start, let a request in, and neither is enough
alone:

- the **session cookie**. The URL ``rbv serve`` prints carries a key (``?token=…``);
  the first visit with it trades it for the cookie (``HttpOnly``: no script reads it;
  ``SameSite=Strict``: another site's page never sends it) and is sent on without the
  key, so the key leaves the address bar and the history.
- the **path secret**: every page, image, static file and API call lives under
  ``/s/<secret>/``. Cookies are not kept apart by port (a browser signed in here sends
  its cookies to any server on 127.0.0.1, another user's too), but an address is: the
  browser never sends this one elsewhere (``Referrer-Policy: no-referrer``), and the
  cookie's ``Path`` is this folder, so another port is not even sent the cookie.

A request without both is refused with a page saying to open the printed URL, and the
refusal names neither secret. The key is printed once, on the start line, and never
logged.
"""

from __future__ import annotations

import html
import secrets
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Scope

from rbv.private_files import private_file

KEY_PARAMETER = "token"
NO_STORE = {"Cache-Control": "no-store"}

REFUSED = ("Open the address that `rbv serve` printed when it started (it ends in "
           "?token=…): this library is only for the person who started the server.")


class Access:
    """The secrets of one server run: the key in its printed URL, the session its
    cookie carries and the folder every address is under (all new at each start, so a
    restart signs every browser out)."""

    def __init__(self, port: int) -> None:
        self.key = secrets.token_urlsafe(32)
        self.session = secrets.token_urlsafe(32)
        self.base = f"/s/{secrets.token_urlsafe(32)}"
        """The path every address of this run starts with (no ``/`` at its end)."""
        # one cookie per port: two servers on one machine (one host for cookies) do
        # not sign each other's browsers out
        self.cookie = f"rbv-session-{port}"

    def url(self, root: str) -> str:
        """``root`` (the server's root URL) with the key: the URL to print and open."""
        return f"{root}?{urlencode({KEY_PARAMETER: self.key})}"

    def check(self, scope: Scope) -> Response | None:
        """None when the request may go on (it carries the session cookie and is under
        :attr:`base`); else the answer: the redirect that sets the cookie (the key was
        given), or a refusal."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        keys = [v for k, v in query if k == KEY_PARAMETER]
        if keys and scope["method"] in ("GET", "HEAD"):
            if len(keys) == 1 and secrets.compare_digest(keys[0].encode(), self.key.encode()):
                return self._sign_in(scope, [(k, v) for k, v in query if k != KEY_PARAMETER])
            return refusal(scope, "wrong or outdated key in the address (the server was "
                                  "restarted?)")
        if not self._under_base(scope["path"]):
            return refusal(scope, "an address of another start of the server, or none")
        if self._signed_in(Headers(scope=scope)):
            return None
        return refusal(scope, "not signed in")

    def _under_base(self, path: str) -> bool:
        start = f"{self.base}/"
        return secrets.compare_digest(path[:len(start)].encode(), start.encode())

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
        """The redirect to the same page under :attr:`base`, setting the cookie. Only a
        plain path of this server's is kept: anything a browser could read as another
        host (``//evil.example``, ``/\\evil``) goes to the start page instead."""
        path = str(scope["path"])
        if self._under_base(path):  # signing in again on a page of this run
            path = path[len(self.base):]
        if not path.startswith("/") or path.startswith("//") or "\\" in path:
            path, rest = "/", []
        target = self.base + quote(path) + (f"?{urlencode(rest)}" if rest else "")
        answer = RedirectResponse(target, 303, headers=NO_STORE)
        answer.set_cookie(self.cookie, self.session, path=f"{self.base}/", httponly=True,
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


def opener(path: Path, url: str) -> Path:
    """A page at ``path`` (its user's alone) that sends the browser on to ``url``:
    ``--open`` gives the browser this file, as Jupyter does, so the key is never on a
    command line, where every user of the machine sees it (``ps``)."""
    target = html.escape(url, quote=True)
    with private_file(path) as f:
        f.write(("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                 f"<meta http-equiv=\"refresh\" content=\"0;url={target}\">"
                 "<title>rbv serve</title></head><body>"
                 f"<p><a href=\"{target}\">Open rbv serve</a></p></body></html>").encode())
    return path
