"""Passwords out of every output: one function masks a storage URL, or any text that quotes one.

Where a password can sit in a storage URL:
- the userinfo, `scheme://user:PASSWORD@host`, percent-encoded or not (a raw `@` or space in it too);
- the query string, `?password=...` or `&password=...`, which libpq and SQLAlchemy accept, in any
  case and with the key percent-encoded (`pass%77ord`, which SQLAlchemy decodes); `sslpassword` (the
  client key's passphrase) and MySQL's `passwd` are secrets too. `passfile` is a path to a password
  file, not a secret, so it stays visible.

A text that merely contains URLs (an error message, a traceback) has each URL-like part masked, and
the passwords of the storages this process opened are masked wherever they appear, since a driver's
message can quote one outside its URL.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"
_SCHEME = r"[a-z][a-z0-9+.-]*://"
_SECRET_KEY = r"[a-z_]*pass(?:word|wd)"  # password, sslpassword, passwd; not passfile
_WHOLE_URL = re.compile(rf"{_SCHEME}[^\n]*", re.I)
# In free text: the userinfo of a URL, up to the last "@" of its run of non-blank characters (a raw
# "@" in the password), or, with a blank in the password, up to the first "@" on the line when no
# "/" comes before it (a "/" means the "@" belongs to something after the URL).
_USERINFO_TOKEN = re.compile(rf"(?P<head>{_SCHEME}[^:/@\s]*:)(?P<secret>\S*)(?P<tail>@)", re.I)
_USERINFO_BLANKS = re.compile(rf"(?P<head>{_SCHEME}[^:/@\s]*:)(?P<secret>[^/@\n]*)(?P<tail>@)", re.I)
# In free text: password=value in a URL's query (to the next "&", quote or line end), as a libpq
# keyword (a blank ends it unless it is quoted), and 'password': 'value' in a dict's repr.
# The key may be percent-encoded (pass%77ord), which SQLAlchemy decodes: any key is matched, and
# `_masked` keeps the ones that do not decode to a secret's name. In free text the value ends at a blank
# unless another parameter ("&") follows on the line, and a closing ":,;.)" stays, so that the message
# after a URL survives.
_ANY_KEY = r"[a-z0-9_%.+-]+"
_TEXT_VALUE = r"""[^&'"\n]*(?=&)|[^&'"\s]*?(?=[:,;.)]*(?:[\s'"]|$))"""
_QUERY_IN_TEXT = re.compile(
    rf"(?P<head>(?<=[?&;])(?P<key>{_ANY_KEY})=)(?!\*\*\*)(?P<secret>{_TEXT_VALUE})", re.I
)
_KEYWORD = re.compile(
    rf"(?P<head>(?:^|(?<=[\s(,]))(?P<key>{_SECRET_KEY})\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s'\",)]*)",
    re.I | re.M,
)
_QUOTED_KEY_VALUE = re.compile(
    rf"(?P<head>['\"]{_SECRET_KEY}['\"]\s*:\s*(?P<q>['\"]))(?P<secret>.*?)(?=(?P=q))", re.I
)
# password=value in a URL's query string: the value runs to the next "&", blanks included.
_QUERY_PARAMETER = re.compile(rf"(?P<head>[?&;](?P<key>{_ANY_KEY})=)(?P<secret>[^&]*)", re.I)
# Shorter passwords are masked inside URLs only: blanking every "ab" of a text would garble it.
_MIN_REMEMBERED = 4

_remembered: set[str] = set()


def mask_url(text: str) -> str:
    """`text` with every password in it replaced by ***: a storage URL, or a message that quotes one."""
    stripped = text.strip()
    if "\n" not in stripped and _WHOLE_URL.fullmatch(stripped):
        masked = _mask_whole_url(stripped)
        return text.replace(stripped, masked, 1)
    return _mask_free_text(text)


def remember_secrets(url: str) -> None:
    """Mask the passwords of `url` wherever they appear later, also outside a URL."""
    for secret in url_secrets(url):
        if len(secret) >= _MIN_REMEMBERED:
            decoded = unquote(secret)
            _remembered.update({secret, decoded, quote(decoded, safe="")})


def url_secrets(url: str) -> list[str]:
    """The passwords written in `url` (userinfo and query), as written there."""
    start, end = _userinfo_password_span(url)
    secrets = [url[start:end]] if end > start else []
    query = _query_of(url, end)
    secrets += [
        m["secret"]
        for m in _QUERY_PARAMETER.finditer(query)
        if re.fullmatch(_SECRET_KEY, unquote(m["key"]), re.I)
    ]
    from sqlalchemy.engine import make_url  # here: the CLI's --help does not pay for importing SQLAlchemy

    try:  # what the driver receives, decoded: it may differ in form from the text
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse has only the text's secrets
        return secrets
    if parsed.password:
        secrets.append(str(parsed.password))
    for key, value in parsed.query.items():
        if re.fullmatch(_SECRET_KEY, key, re.I):
            secrets += [value] if isinstance(value, str) else list(value)
    return list(dict.fromkeys(s for s in secrets if s))


def has_raw_at_in_password(url: str) -> bool:
    """True when the userinfo holds more than one "@": a password with an unencoded "@", which
    SQLAlchemy splits at the first one, connecting to a host named after the rest of the password."""
    start, end = _userinfo_password_span(url)
    return "@" in url[start:end]


def _mask_whole_url(url: str) -> str:
    start, end = _userinfo_password_span(url)
    masked = url[:start] + MASK + url[end:] if end > start else url
    cut = start + len(MASK) if end > start else end
    head, query = masked[:cut], masked[cut:]
    query_start = query.find("?")
    if query_start >= 0:
        query = query[:query_start] + _QUERY_PARAMETER.sub(_masked, query[query_start:])
    return _mask_free_text(head + query)  # a second URL on the line, say


def _userinfo_password_span(url: str) -> tuple[int, int]:
    """Where the password of `url`'s userinfo lies; (i, i) when it has none.

    The userinfo ends at the first "@", or at the last "@" before the query when several come
    before it (an unencoded "@" in the password); a "@" in the query is a value's."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return 0, 0
    rest = scheme_end + 3
    first_at = url.find("@", rest)
    if first_at < 0:
        return rest, rest
    query = url.find("?", first_at)
    last_at = url.rfind("@", first_at, query if query >= 0 else len(url))
    colon = url.find(":", rest, first_at)
    if colon < 0:
        return rest, rest
    return colon + 1, last_at


def _query_of(url: str, userinfo_end: int) -> str:
    query_start = url.find("?", max(userinfo_end, 0))
    return url[query_start:] if query_start >= 0 else ""


def _masked(match: re.Match) -> str:
    key = match.groupdict().get("key")
    if key is not None and not re.fullmatch(_SECRET_KEY, unquote(key), re.I):
        return match[0]
    return match["head"] + MASK if match["secret"] else match[0]


def _mask_free_text(text: str) -> str:
    text = _mask_remembered(text)
    text = _USERINFO_TOKEN.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    text = _USERINFO_BLANKS.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    text = _QUERY_IN_TEXT.sub(_masked, text)
    text = _KEYWORD.sub(_masked, text)
    return _QUOTED_KEY_VALUE.sub(_masked, text)


def _mask_remembered(text: str) -> str:
    for secret in sorted(_remembered, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(secret, MASK)
    return text
