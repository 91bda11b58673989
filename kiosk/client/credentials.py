"""The station token in a keyring: chosen explicitly, refused when it would not keep the secret.

keyring picks a backend on its own when nothing is configured, and on a headless thin client that
choice is a trap: the fail backend raises on every call, the null backend silently drops the token,
a chainer with nothing to chain behaves like null, a plaintext file keeps the token readable, and
an encrypted file keyring prompts for its password on a terminal nobody watches. So the backend
comes from the station config (`keyring_backend`) or PYTHON_KEYRING_BACKEND, and every one of those
cases is refused with one sentence saying what to install or set.

Headless recipe: keyrings.cryptfile (Argon2id + AES-GCM in a file under XDG_DATA_HOME) with its
password from KEYRING_CRYPTFILE_PASSWORD, or from the systemd credential `keyring-password`
(LoadCredentialEncrypted=, sealed to the TPM or the host key) when run as the station service.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError

from kiosk.config import ConfigError

SERVICE: Final = "station-kiosk"
CRYPTFILE: Final = "keyrings.cryptfile.cryptfile.CryptFileKeyring"
PASSWORD_ENV: Final = "KEYRING_CRYPTFILE_PASSWORD"
PASSWORD_CREDENTIAL: Final = "keyring-password"
"""Name of the systemd credential holding the cryptfile password ($CREDENTIALS_DIRECTORY/…)."""

HOW_TO_FIX: Final = (
    f"pip install keyrings.cryptfile, set keyring_backend = {CRYPTFILE!r} in the station "
    f"config and {PASSWORD_ENV} in the environment, or run under systemd with "
    f"LoadCredentialEncrypted={PASSWORD_CREDENTIAL}:<file> (see scripts/install-station.sh)"
)

# Backends that accept a token and keep nothing, or keep it readable by anyone with the disk.
_NO_STORAGE: Final = {
    "keyring.backends.fail.Keyring": "finds no keyring at all",
    "keyring.backends.null.Keyring": "drops every secret it is given",
}
_PLAINTEXT_CLASS: Final = "PlaintextKeyring"


class KeyringUnusable(ConfigError):
    """No backend that keeps the token secret and available without a person at the keyboard."""


class NotEnrolled(ConfigError):
    """The keyring works but holds no token for this server."""

    def __init__(self, server_url: str) -> None:
        super().__init__(
            f"station not enrolled: run kiosk enroll --server {server_url} --code CODE"
        )


def account(server_url: str) -> str:
    """The keyring username: the server URL, so one station can be enrolled with several plants."""
    return server_url.strip().rstrip("/")


def store_token(server_url: str, token: str, *, backend: str | None = None) -> None:
    write_token(open_backend(backend), server_url, token)


def write_token(keyring: KeyringBackend, server_url: str, token: str) -> None:
    """Store the token in an opened backend (see open_backend)."""
    try:
        keyring.set_password(SERVICE, account(server_url), token)
    except KeyringError as exc:
        raise KeyringUnusable(
            f"{class_path(keyring)} could not store the token ({exc}); {HOW_TO_FIX}"
        ) from None


def load_token(server_url: str, *, backend: str | None = None) -> str:
    """The station's token: one key derivation of an encrypted file keyring, not two (see _unlock)."""
    return read_token(open_backend(backend, check_password=False), server_url)


def read_token(keyring: KeyringBackend, server_url: str) -> str:
    """The token stored for `server_url` in an opened backend, or NotEnrolled."""
    try:
        token = keyring.get_password(SERVICE, account(server_url))
    except KeyringError as exc:
        raise KeyringUnusable(
            f"{class_path(keyring)} could not be read ({exc}); {HOW_TO_FIX}"
        ) from None
    except ValueError:  # AES-GCM refused the entry: the password is not this file's
        raise _wrong_password(keyring) from None
    if not token:
        raise NotEnrolled(account(server_url))
    return token


def open_backend(name: str | None = None, *, check_password: bool = True) -> KeyringBackend:
    """The configured backend, unlocked, or KeyringUnusable saying how to get a usable one.

    check_password=False leaves a wrong password to be found by the first read (read_token),
    which proves it as well and saves the reference check's own key derivation."""
    chosen = name or os.environ.get("PYTHON_KEYRING_BACKEND") or None
    keyring = _load(chosen) if chosen else _detected()
    keyring = _unchained(keyring)
    _refuse_unusable(keyring)
    _unlock(keyring, check_password=check_password)
    return keyring


def describe(keyring: KeyringBackend) -> str:
    """Class name and, for file backends, where the file is: what an admin needs to find it."""
    where = getattr(keyring, "file_path", None)
    return f"{class_path(keyring)} ({where})" if where else class_path(keyring)


# --- choosing and checking a backend ------------------------------------------------------------


def _load(name: str) -> KeyringBackend:
    from keyring.core import load_keyring

    try:
        return load_keyring(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise KeyringUnusable(
            f"keyring backend {name} cannot be loaded ({exc}); {HOW_TO_FIX}"
        ) from None
    except RuntimeError as exc:  # raised by a backend's `priority` when it is not viable here
        raise KeyringUnusable(
            f"keyring backend {name} does not work here ({exc}); {HOW_TO_FIX}"
        ) from None


def _detected() -> KeyringBackend:
    """keyring's own choice (keyringrc.cfg, then detection), used only when nothing is configured."""
    import keyring

    return keyring.get_keyring()


def _unchained(keyring: KeyringBackend) -> KeyringBackend:
    """A chainer writes to its first member: judge (and unlock) that one, not the wrapper."""
    from keyring.backends.chainer import ChainerBackend

    if not isinstance(keyring, ChainerBackend):
        return keyring
    members: list[KeyringBackend] = list(keyring.backends)
    if not members:
        raise KeyringUnusable(f"the keyring chainer has no backend to chain; {HOW_TO_FIX}")
    return members[0]


def _refuse_unusable(keyring: KeyringBackend) -> None:
    name = class_path(keyring)
    if name in _NO_STORAGE:
        raise KeyringUnusable(f"keyring backend {name} {_NO_STORAGE[name]}; {HOW_TO_FIX}")
    if type(keyring).__name__ == _PLAINTEXT_CLASS:
        raise KeyringUnusable(
            f"keyring backend {name} would keep the station token in plain text; {HOW_TO_FIX}"
        )


def _unlock(keyring: KeyringBackend, *, check_password: bool = True) -> None:
    """Give an encrypted file keyring its password, which it would otherwise ask for on a tty."""
    if not hasattr(type(keyring), "keyring_key"):
        return
    password = _cryptfile_password()
    if password is None:
        raise KeyringUnusable(
            f"{class_path(keyring)} needs its password: set {PASSWORD_ENV}, or run under systemd "
            f"with LoadCredentialEncrypted={PASSWORD_CREDENTIAL}:<file>"
        )
    if not check_password and hasattr(keyring, "_keyring_key"):
        # The keyring_key setter decrypts a reference entry first: one Argon2id derivation
        # (~1.7 s on a thin client) spent only to learn what decrypting the token tells anyway,
        # since its AES-GCM tag fails under a wrong password. Reading, skip it: one KDF a start.
        keyring._keyring_key = password
        return
    try:
        keyring.keyring_key = password  # type: ignore[attr-defined]
    except (ValueError, AssertionError):
        raise _wrong_password(keyring) from None


def _wrong_password(keyring: KeyringBackend) -> KeyringUnusable:
    return KeyringUnusable(
        f"the keyring password does not open {describe(keyring)}: check {PASSWORD_ENV} "
        f"or the {PASSWORD_CREDENTIAL} credential"
    )


def _cryptfile_password() -> str | None:
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / PASSWORD_CREDENTIAL
        if path.is_file():
            return path.read_text().strip() or None
    return None


def class_path(keyring: KeyringBackend) -> str:
    """The dotted path keyring_backend takes, e.g. keyrings.cryptfile.cryptfile.CryptFileKeyring."""
    cls = type(keyring)
    return f"{cls.__module__}.{cls.__qualname__}"
