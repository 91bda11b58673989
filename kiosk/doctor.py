"""`kiosk doctor`: the station's own checks, each answered with "ok" or a problem and its fix.

Meant for the person standing at a thin client (or on SSH to it) who must tell, in one screen,
whether the terminal, the token, the network or the clock is what stops the station.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, TextIO
from urllib.parse import urlsplit

import httpx

from kiosk.client import tls
from kiosk.config import StationSettings, default_config_file

MIN_COLUMNS: Final = 80
MIN_LINES: Final = 24
MAX_SKEW_SECONDS: Final = 60.0
RENEW_WITHIN_DAYS: Final = 30
TIMEOUT: Final = httpx.Timeout(5.0, connect=3.0)
COLOR_SYSTEMS: Final = ("auto", "standard", "256", "truecolor", "windows")


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"ok   {self.what}" if self.ok else f"PROBLEM {self.what}: {self.fix}"


@dataclass(frozen=True)
class ServerAnswer:
    """What one GET /health told us, or why there was no answer."""

    error: str | None = None
    date: datetime | None = None
    sent_at: float = 0.0
    received_at: float = 0.0
    tls: tls.TLSProblem | None = None
    """Set when the request failed at TLS (the error then says so too)."""


@dataclass(frozen=True)
class Trust:
    """The TLS verdict on server_url: a line to print (None: nothing to say, as for the
    embedded server), the context the other checks must use, and whether the station token
    may be sent (never over plain http to another machine unless allowed)."""

    check: Check | None
    context: ssl.SSLContext
    may_send_token: bool = True


def run(settings: StationSettings, env: Mapping[str, str], out: TextIO | None = None) -> int:
    """Print every check; 0 only when all are ok."""
    out = out or sys.stdout
    url = settings.server_url
    trust = check_tls(settings)
    answer = probe(url, trust.context) if url else None
    keyring, token = check_keyring(settings)
    checks = [
        check_terminal(env, shutil.get_terminal_size(fallback=(0, 0))),
        keyring,
        *([trust.check] if trust.check else []),
        check_server(url, answer),
        check_clock(answer, embedded=url is None),
    ]
    if url and token and trust.may_send_token and answer is not None and answer.error is None:
        checks.append(check_enrollment(url, token, trust.context))
    for check in checks:
        print(check.line(), file=out)
    return 0 if all(c.ok for c in checks) else 1


# --- terminal -----------------------------------------------------------------------------------


def check_terminal(env: Mapping[str, str], size: tuple[int, int]) -> Check:
    columns, lines = size
    term = env.get("TERM", "")
    if columns == 0 or lines == 0:
        return Check(
            False,
            "terminal size unknown",
            "not a terminal: run kiosk doctor on the station console (or ssh -t)",
        )
    if columns < MIN_COLUMNS or lines < MIN_LINES:
        return Check(
            False,
            f"terminal {columns}x{lines} is smaller than {MIN_COLUMNS}x{MIN_LINES}",
            "choose a smaller console font (FONT= in /etc/vconsole.conf, setfont) "
            "or a larger window",
        )
    colours, problem = color_system(env)
    if problem:
        return Check(False, f"terminal TERM={term or '(unset)'}", problem)
    theme = " → theme kiosk-console" if term == "linux" else ""
    return Check(True, f"terminal {columns}x{lines}, TERM={term}, {colours}{theme}")


def color_system(env: Mapping[str, str]) -> tuple[str, str]:
    """(what Textual will use, a fix if that is wrong), following Rich's own detection order."""
    term = env.get("TERM", "").lower()
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "").lower()
    if forced and forced not in COLOR_SYSTEMS:
        return forced, f"TEXTUAL_COLOR_SYSTEM={forced} is not one of {', '.join(COLOR_SYSTEMS)}"
    if term in ("", "dumb", "unknown"):
        return "no colour", (
            "this terminal has no colour or cursor control: set TERM=linux on the console "
            "(the systemd unit does) or TERM=xterm-256color in a terminal emulator"
        )
    if forced and forced != "auto":
        system = forced
    elif env.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        system = "truecolor"
    elif term.endswith("256color"):
        system = "256"
    else:
        system = "standard"
    if term == "linux" and system in ("256", "truecolor"):
        # The framebuffer console maps every colour onto its 8 (16 with bold): the theme's
        # shades would collapse into each other, so the console theme and 8 colours belong together.
        return system, "the Linux console shows 8 colours: set TEXTUAL_COLOR_SYSTEM=standard"
    if system == "standard":
        names = "8 colours (Linux console)" if term == "linux" else "16 colours"
        return f"standard colour system, {names}", ""
    return f"{system} colour system", ""


# --- keyring ------------------------------------------------------------------------------------


def check_keyring(settings: StationSettings) -> tuple[Check, str | None]:
    """Is the backend usable, and does it hold a token for the server? (check, token)"""
    if settings.server_url is None:
        return Check(True, "keyring: not needed (embedded server, no server_url set)"), None
    from kiosk.client import credentials

    try:
        keyring = credentials.open_backend(settings.keyring_backend)
        token = credentials.read_token(keyring, settings.server_url)
    except credentials.KeyringUnusable as exc:
        return Check(False, "keyring", str(exc)), None
    except credentials.NotEnrolled as exc:
        return Check(False, "keyring holds no token for this server", str(exc)), None
    what = f"keyring {credentials.describe(keyring)} holds this station's token"
    return Check(True, what), token


# --- TLS ----------------------------------------------------------------------------------------


def check_tls(settings: StationSettings) -> Trust:
    """The same gate the station passes at start (tls.station_context), as a report."""
    try:
        context = tls.client_context(settings.ca_file)
    except tls.TLSConfigError as exc:
        # Go on with the default trust, so the server and clock checks still say something.
        return Trust(Check(False, "TLS", str(exc)), tls.client_context(None))
    url = settings.server_url
    parts = urlsplit(url or "")
    if url is None or (parts.scheme == "http" and tls.is_loopback(parts.hostname or "")):
        return Trust(None, context)  # the embedded server or this machine: plain http by design
    try:
        tls.check_server_url(url, allow_insecure_http=settings.allow_insecure_http)
    except tls.TLSConfigError as exc:
        return Trust(Check(False, "TLS", str(exc)), context, may_send_token=False)
    if parts.scheme == "http":
        what = (
            f"TLS: none, plain http to {parts.hostname} (insecure allowed by allow_insecure_http)"
        )
        return Trust(Check(True, what), context)
    host, port = parts.hostname or "", parts.port or 443
    by = (
        f"the plant CA in {settings.ca_file}"
        if settings.ca_file
        else "the default CAs (certifi or $SSL_CERT_FILE)"
    )
    return Trust(check_handshake(host, port, context, by), context)


def check_handshake(host: str, port: int, context: ssl.SSLContext, by: str) -> Check:
    """One TLS handshake, verified exactly as the station's client verifies it."""
    try:
        with (
            socket.create_connection((host, port), timeout=TIMEOUT.connect) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            cert = conn.getpeercert()
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        problem = tls.diagnose(exc, host) or tls.TLSProblem(str(exc), "check the server's TLS")
        return Check(False, f"TLS: {problem.reason}", problem.fix)
    except OSError as exc:
        return Check(
            False, "TLS not checked", f"{host}:{port} did not answer ({exc}): fix that first"
        )
    return Check(True, f"TLS: the certificate of {host} is verified by {by}{_expiry(cert)}")


def _expiry(cert: Mapping[str, object] | None) -> str:
    not_after = (cert or {}).get("notAfter")
    if not isinstance(not_after, str):
        return ""
    until = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    days = (until - datetime.now(UTC)).days
    soon = f": renew it, {days} days left" if days < RENEW_WITHIN_DAYS else ""
    return f", valid until {until:%Y-%m-%d}{soon}"


# --- server and clock ---------------------------------------------------------------------------


def probe(server_url: str, context: ssl.SSLContext | None = None) -> ServerAnswer:
    url = server_url.rstrip("/") + "/health"
    sent = time.time()
    try:
        response = httpx.get(url, timeout=TIMEOUT, verify=context or tls.default_context())
    except httpx.HTTPError as exc:
        problem = tls.diagnose(exc, urlsplit(url).hostname or url)
        if problem is not None:
            return ServerAnswer(error=f"TLS: {problem.reason}", tls=problem)
        return ServerAnswer(error=f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
    received = time.time()
    if response.status_code != 200:
        return ServerAnswer(error=f"GET {url} answered {response.status_code}")
    return ServerAnswer(
        date=_http_date(response.headers.get("date")), sent_at=sent, received_at=received
    )


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def check_server(server_url: str | None, answer: ServerAnswer | None) -> Check:
    if server_url is None or answer is None:
        return Check(True, "server: embedded (started by the station, no server_url set)")
    if answer.tls is not None:
        return Check(False, f"server {server_url} refused at TLS", "fix the TLS problem above")
    if answer.error is not None:
        return Check(
            False,
            f"server {server_url} unreachable ({answer.error})",
            f"check the network cable, server_url in {default_config_file()}, "
            "and that `kiosk serve` runs there",
        )
    return Check(True, f"server {server_url} answers /health")


def check_clock(answer: ServerAnswer | None, embedded: bool) -> Check:
    if embedded:
        return Check(True, "clock: the embedded server shares this machine's clock")
    if answer is None or answer.error is not None:
        return Check(False, "clock skew unknown", "the server did not answer: fix that first")
    if answer.date is None:
        return Check(False, "clock skew unknown", "the server sent no HTTP Date header")
    # The Date header is stamped somewhere between sending and receiving, and cut to whole
    # seconds: its best estimate is half a second later than it says.
    local = datetime.fromtimestamp((answer.sent_at + answer.received_at) / 2, UTC)
    skew = (local - answer.date).total_seconds() - 0.5
    if abs(skew) > MAX_SKEW_SECONDS:
        direction = "ahead of" if skew > 0 else "behind"
        return Check(
            False,
            f"clock is {abs(skew):.0f} s {direction} the server",
            "turn on time sync (timedatectl set-ntp true) with the plant's NTP server",
        )
    return Check(True, f"clock within {MAX_SKEW_SECONDS:.0f} s of the server ({skew:+.0f} s)")


def check_enrollment(server_url: str, token: str, context: ssl.SSLContext | None = None) -> Check:
    """The token is there; does the server still accept it (revoked stations get 401)?"""
    url = server_url.rstrip("/") + "/api/v1/station"
    try:
        response = httpx.get(
            url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
            verify=context or tls.default_context(),
        )
    except httpx.HTTPError as exc:
        return Check(False, "enrollment not checked", f"GET {url} failed ({exc})")
    if response.status_code == 401:
        return Check(
            False,
            "station not enrolled: the server refuses this station's token (revoked?)",
            "ask an admin for a new code (kiosk station add NAME --work-center WC) and run "
            f"kiosk enroll --server {server_url} --code CODE",
        )
    if response.status_code != 200:
        return Check(False, "enrollment not checked", f"GET {url} answered {response.status_code}")
    try:
        info = response.json()
        station = f"station {info['name']} ({info['work_center']})"
    except (ValueError, KeyError, TypeError):
        station = "this station"
    return Check(True, f"{station} is enrolled at {server_url}")
