"""The server's log set-up: stagger's own lines as they are, other libraries' lines with every
URL cut to its scheme and host.

Libraries log the URLs they request (httpx at INFO: `HTTP Request: POST https://hooks.slack.com/
services/T000/B000/XXXX ...`; httpcore and urllib3 at DEBUG) and a webhook URL's path or query
is often its only secret. So a record from any logger outside `stagger` has each URL's path,
query and fragment replaced by `/…` before any handler writes it, at every level. stagger's
own lines already name only hosts where a URL is secret (docs/notifications.md).
`--log-secrets` turns the cutting off, for debugging a receiver on a trusted terminal.
"""

from __future__ import annotations

import logging
import re

OWN = "stagger"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# scheme://authority, then anything up to whitespace or a quote: the path, query and fragment
_URL = re.compile(
    r"""(?P<origin>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s"'<>?#]+)(?P<rest>[/?#][^\s"'<>]*)?"""
)
CUT = "/…"


def cut_urls(text: str) -> str:
    """`text` with every URL's path, query and fragment replaced by `/…` (scheme and host
    kept, so a line still says where a request went)."""
    return _URL.sub(lambda m: m["origin"] + (CUT if m["rest"] else ""), text)


class CutLibraryUrls(logging.Filter):
    """A handler filter: cuts URLs in other libraries' records, message and traceback alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == OWN or record.name.startswith(OWN + "."):
            return True
        record.msg = cut_urls(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = cut_urls(record.exc_text)
        record.exc_info = None  # the cut text above is what handlers print
        return True


def setup(level: str, log_secrets: bool = False) -> None:
    """Log to stderr at `level`; unless `log_secrets`, cut URLs in other libraries' lines."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    if log_secrets:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CutLibraryUrls) for f in handler.filters):
            handler.addFilter(CutLibraryUrls())
