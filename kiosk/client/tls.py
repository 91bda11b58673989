"""TLS for the station: which server URLs it accepts, and which CA it trusts to vouch for them.

A plant server carries a certificate issued by the plant's own CA, and the station trusts exactly
that CA (`ca_file`): not the public CAs, and not SSL_CERT_FILE, which would let any process
environment widen the trust. Plain http is accepted only to this machine (the embedded server),
unless the station config says `allow_insecure_http`: the station token, badges and PINs would
otherwise cross the shop network in clear.

The trust is decided once at start-up (station.backend) and kept here for the process, because the
station, the admin console and `kiosk outbox sync` all build their ExecutionClient from it.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from kiosk.client.errors import BackendUnreachable
from kiosk.config import ConfigError, StationSettings

LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) grouped by what a person does about them.
_UNKNOWN_CA: Final = frozenset({2, 20, 21, 24})
_SELF_SIGNED: Final = frozenset({18, 19})
_NOT_YET_VALID: Final = 9
_EXPIRED: Final = 10
_NAME_MISMATCH: Final = frozenset({62, 64})

_station_context: ssl.SSLContext | None = None


class TLSConfigError(ConfigError):
    """ca_file cannot be used, or server_url is not one the station may talk to."""


class InsecureServer(TLSConfigError):
    """A plain http:// URL to another machine, without allow_insecure_http."""


class ServerNotTrusted(BackendUnreachable):
    """The server answered, but its certificate did not verify against the station's CA."""


@dataclass(frozen=True)
class TLSProblem:
    """Why a TLS connection failed, and what to do about it."""

    reason: str
    fix: str
    in_handshake: bool = True
    """Failed before any request was sent (so e.g. an enrollment code was not spent)."""

    def sentence(self) -> str:
        return f"{self.reason}: {self.fix}"


# --- which URLs -------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Only literal loopback: a name that merely resolves to 127.x proves nothing about the wire."""
    host = host.lower().strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_server_url(url: str, *, allow_insecure_http: bool) -> None:
    """Refuse a server URL the station must not use; the message says how to fix it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TLSConfigError(
            f"server_url {url!r} is not an http(s) URL: write it as https://HOST:PORT"
        )
    if parts.scheme == "https" or allow_insecure_http or is_loopback(parts.hostname):
        return
    raise InsecureServer(
        f"server_url {url} is plain http to another machine, so the station token and PINs "
        f"would cross the network in clear: use https://{parts.netloc} with ca_file set to the "
        "plant CA (kiosk serve --tls-cert/--tls-key on the server), or set "
        "allow_insecure_http = true in the station config (KIOSK_ALLOW_INSECURE_HTTP=1)"
    )


# --- whom to trust ------------------------------------------------------------------------------


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context trusting only `ca_file`; without it, httpx's default trust
    (certifi, or $SSL_CERT_FILE: httpx 0.28 reads it for verify=True)."""
    if ca_file is None:
        return _public_context()
    path = ca_file.expanduser()
    hint = "point ca_file (KIOSK_CA_FILE) at the plant CA bundle, a PEM file"
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise TLSConfigError(f"ca_file {path}: {what}; {hint}")
    try:
        # cafile given: only that bundle is loaded, never the system's default CAs.
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        raise TLSConfigError(
            f"ca_file {path}: no CA certificate in PEM form in it ({exc.reason or exc}); {hint}"
        ) from None
    except OSError as exc:
        raise TLSConfigError(f"ca_file {path}: {exc.strerror or exc}; {hint}") from None


@functools.cache
def _public_context() -> ssl.SSLContext:
    # What httpx uses for verify=True, built once: loading certifi costs ~20 ms per client.
    import httpx

    return httpx.create_ssl_context()


def station_context(settings: StationSettings) -> ssl.SSLContext:
    """Check the station's server URL and CA: the start-up gate of station.backend."""
    if settings.server_url is not None:
        check_server_url(settings.server_url, allow_insecure_http=settings.allow_insecure_http)
    return client_context(settings.ca_file)


def use_for_station(settings: StationSettings) -> ssl.SSLContext:
    """Decide this process's trust from the settings (raises TLSConfigError with the fix)."""
    global _station_context
    _station_context = station_context(settings)
    return _station_context


def set_default_context(context: ssl.SSLContext | None) -> None:
    """Replace (None: forget) the process's trust; for tests and for a station re-reading config."""
    global _station_context
    _station_context = context


def default_context() -> ssl.SSLContext:
    """The context an ExecutionClient built without `verify=` uses."""
    return _station_context or _public_context()


# --- explaining failures ------------------------------------------------------------------------


def diagnose(exc: BaseException, host: str = "the server") -> TLSProblem | None:
    """The TLS reason behind a failed request, found in its exception chain; None if not TLS.

    The client's errors are raised `from None`, but the original stays in __context__.
    """
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _verify_problem(cause, host)
        if isinstance(cause, ssl.SSLError):
            return _handshake_problem(cause)
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _verify_problem(exc: ssl.SSLCertVerificationError, host: str) -> TLSProblem:
    code = exc.verify_code
    if code in _UNKNOWN_CA:
        return TLSProblem(
            "the server's certificate is signed by a CA this station does not trust (unknown CA)",
            "set ca_file (KIOSK_CA_FILE) to the plant CA bundle that signed it",
        )
    if code in _SELF_SIGNED:
        return TLSProblem(
            "the server's certificate is self-signed and not in ca_file (unknown CA)",
            "issue the server a certificate from the plant CA and set ca_file to that CA",
        )
    if code == _EXPIRED:
        return TLSProblem(
            "the server's certificate has expired",
            "renew it with the plant CA (or check this station's clock: timedatectl)",
        )
    if code == _NOT_YET_VALID:
        return TLSProblem(
            "the server's certificate is not valid yet",
            "check this station's clock (timedatectl set-ntp true)",
        )
    if code in _NAME_MISMATCH:
        return TLSProblem(
            f"the server's certificate is not valid for {host} (hostname mismatch)",
            f"reissue it with subjectAltName {_san_entry(host)}, "
            "or use a name it lists in server_url",
        )
    return TLSProblem(
        f"the server's certificate did not verify ({exc.verify_message or exc.reason})",
        "check the certificate and ca_file against the plant CA",
    )


def _san_entry(host: str) -> str:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host.strip('[]')}"


def _handshake_problem(exc: ssl.SSLError) -> TLSProblem:
    reason = exc.reason or str(exc)
    if reason == "WRONG_VERSION_NUMBER":
        return TLSProblem(
            "the server does not speak TLS on this port (plain http?)",
            "start it with kiosk serve --tls-cert/--tls-key, or check the port in server_url",
        )
    # Anything else may come after the request went out (a connection cut mid-answer).
    return TLSProblem(
        f"the TLS connection failed ({reason})", "check the server's TLS setup", in_handshake=False
    )
