"""URLs Fledgling is given: model endpoints must be http(s), and no secret inside one is printed.

A `base_url` or a store URL may carry credentials (`https://user:pass@host/v1`,
`postgresql://app:pw@db/traces`, `...?api_key=sk-...`). Every banner, error and page that shows
a URL goes through `mask_url`, so the secret stays in the config and out of terminals and logs.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# query parameters that carry a credential (api_key, apiKey, access_token, sig, X-Amz-Signature...)
_SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.IGNORECASE)
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^@/?#]*)@")


def mask_url(url: str) -> str:
    """`url` with its password and secret-looking query values replaced by `***`."""
    url = _USERINFO.sub(_mask_userinfo, url, count=1)
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all (e.g. an unbalanced '['): show only the scheme
        return url.split(":", 1)[0] + ":" + MASK if ":" in url else url
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_SECRET_PARAM.search(name) for name, _ in pairs):
        return url
    query = urlencode([(n, MASK if _SECRET_PARAM.search(n) else v) for n, v in pairs], safe="*")
    return urlunsplit(parts._replace(query=query))


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme = match.group(1)
    user, colon, _password = match.group(2).partition(":")
    if not colon and scheme.lower().startswith("http"):  # https://<token>@host: the user is the secret
        return f"{scheme}{MASK}@"
    return f"{scheme}{user}{':' + MASK if colon else ''}@"


def check_http_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host; else a `ValueError` saying what to write."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{mask_url(url)}' is not an http(s) URL; write it as "
                         "http://host:port/v1 or https://host/v1")
    return url
