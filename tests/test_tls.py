"""TLS between station and server: a throwaway plant CA made here with `cryptography`, the real
reference server under uvicorn serving HTTPS on a loopback port, and the real `kiosk` command.

What must hold: a station with the plant CA reaches the server and one without it is told why;
plain http to another machine is refused unless allowed; `kiosk serve --tls-cert/--tls-key`
serves https; `kiosk doctor` names what is wrong with the TLS; bad files give one line, no
traceback. The embedded server stays plain http on loopback and keeps working.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.cli import main
from kiosk.client import BackendUnreachable, ExecutionClient, tls
from kiosk.config import ConfigError, StationSettings, default_config_file, load_settings
from kiosk.server import demo
from kiosk.server.app import create_app
from kiosk.server.service import ExecutionService
from kiosk.station import backend
from tests.helpers import ROOT, free_port, server_process, thin_client_home, uvicorn_in_thread

pytestmark = pytest.mark.timeout(120)

GOOD_TERMINAL = {"COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"}


# --- a plant CA of our own ----------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class TestCA:
    """A CA key and self-signed certificate on disk, issuing server certificates."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            _builder(self.name, self.name, self.key.public_key(), now - timedelta(days=1), 3650)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / f"{name.replace(' ', '-').lower()}.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        names: tuple[str, ...] = ("localhost", "127.0.0.1"),
        *,
        start: timedelta = timedelta(days=-1),
        days: int = 90,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            _builder(subject, self.name, key.public_key(), datetime.now(UTC) + start, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return _write(self.dir, stem, cert, key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return Issued(cert_file, key_file)


@dataclass(frozen=True)
class Certs:
    plant: TestCA
    good: Issued
    wrong_name: Issued
    expired: Issued
    foreign: Issued
    """From another CA, valid for the right names."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("pki")
    plant = TestCA(directory, "Test Plant CA")
    other = TestCA(directory, "Someone Else CA")
    return Certs(
        plant=plant,
        good=plant.issue("server"),
        wrong_name=plant.issue("wrong-name", ("mes.other.example",)),
        expired=plant.issue("expired", start=timedelta(days=-30), days=10),
        foreign=other.issue("foreign"),
    )


# --- the real server over TLS -------------------------------------------------------------------


@dataclass(frozen=True)
class TLSServer:
    url: str
    service: ExecutionService

    def token(self) -> str:
        return self.service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)


@pytest.fixture
def serve_tls(service: ExecutionService) -> Iterator[Callable[[Issued], TLSServer]]:
    """Start the reference server on https://127.0.0.1:PORT with the given certificate."""
    with ExitStack() as running:

        def start(issued: Issued) -> TLSServer:
            port = free_port()
            config = uvicorn.Config(
                create_app(service),
                host="127.0.0.1",
                port=port,
                log_level="critical",  # failed handshakes are what these tests provoke
                lifespan="off",
                ssl_certfile=str(issued.cert),
                ssl_keyfile=str(issued.key),
            )
            running.enter_context(uvicorn_in_thread(config))
            return TLSServer(f"https://127.0.0.1:{port}", service)

        yield start


@pytest.fixture
def https_server(serve_tls: Callable[[Issued], TLSServer], certs: Certs) -> TLSServer:
    return serve_tls(certs.good)


@pytest.fixture(autouse=True)
def station_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = thin_client_home(tmp_path, monkeypatch)
    for name in ("KIOSK_CA_FILE", "KIOSK_ALLOW_INSECURE_HTTP", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    yield home
    tls.set_default_context(None)  # station.backend() sets the process's trust: forget it


def write_config(text: str) -> Path:
    config = default_config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    return config


# --- the client ---------------------------------------------------------------------------------


async def test_the_client_with_the_plant_ca_reaches_the_server(
    https_server: TLSServer, certs: Certs
) -> None:
    context = tls.client_context(certs.plant.pem)
    async with ExecutionClient(https_server.url, https_server.token(), verify=context) as api:
        assert await api.healthy()
        assert (await api.station()).name == demo.DEMO_STATION


async def test_without_the_plant_ca_the_client_fails_and_the_reason_is_named(
    https_server: TLSServer,
) -> None:
    async with ExecutionClient(https_server.url, https_server.token()) as api:
        assert await api.healthy() is False  # an answer, not a crash of the health check
        with pytest.raises(BackendUnreachable) as failed:
            await api.station()
    problem = tls.diagnose(failed.value, "127.0.0.1")
    assert problem is not None
    assert problem.reason == (
        "the server's certificate is signed by a CA this station does not trust (unknown CA)"
    )
    assert "set ca_file (KIOSK_CA_FILE) to the plant CA" in problem.fix


async def test_the_trust_decided_at_start_is_what_every_client_uses(
    https_server: TLSServer, certs: Certs
) -> None:
    settings = StationSettings(server_url=https_server.url, ca_file=certs.plant.pem)
    tls.use_for_station(settings)
    async with ExecutionClient(https_server.url, https_server.token()) as api:
        assert (await api.station()).name == demo.DEMO_STATION


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("wrong_name", "the server's certificate is not valid for 127.0.0.1 (hostname mismatch)"),
        ("expired", "the server's certificate has expired"),
        ("foreign", "the server's certificate is signed by a CA this station does not trust"),
    ],
)
async def test_a_certificate_that_does_not_verify_is_explained(
    serve_tls: Callable[[Issued], TLSServer], certs: Certs, which: str, reason: str
) -> None:
    server = serve_tls(getattr(certs, which))
    context = tls.client_context(certs.plant.pem)
    async with ExecutionClient(server.url, server.token(), verify=context) as api:
        with pytest.raises(BackendUnreachable) as failed:
            await api.station()
    problem = tls.diagnose(failed.value, "127.0.0.1")
    assert problem is not None and problem.reason.startswith(reason)


# --- which URLs a station accepts ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8600",
        "http://127.8.9.10",
        "http://[::1]:8600",
        "http://localhost:8600/",
        "http://LocalHost",
        "http://[::ffff:127.0.0.1]:8600",
        "https://mes.plant.example:8600",
        "https://10.0.0.5",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    tls.check_server_url(url, allow_insecure_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8600",
        "http://mes.plant.example",
        "http://127.0.0.1.mes.example",  # a name, whatever it starts with
        "http://0.0.0.0:8600",
        "http://[fe80::1]:8600",
    ],
)
def test_plain_http_to_another_machine_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(tls.InsecureServer) as refused:
        tls.check_server_url(url, allow_insecure_http=False)
    message = str(refused.value)
    assert "\n" not in message
    assert "plain http to another machine" in message
    assert "use https://" in message and "ca_file" in message
    assert "allow_insecure_http = true" in message

    tls.check_server_url(url, allow_insecure_http=True)


@pytest.mark.parametrize("url", ["mes.plant.example:8600", "ftp://mes", "https://"])
def test_a_server_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(tls.TLSConfigError, match="is not an http\\(s\\) URL"):
        tls.check_server_url(url, allow_insecure_http=True)


def test_the_new_settings_come_from_the_toml_file_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(f'ca_file = "{tmp_path / "ca.pem"}"\nallow_insecure_http = true\n')
    settings = load_settings()
    assert (settings.ca_file, settings.allow_insecure_http) == (tmp_path / "ca.pem", True)

    monkeypatch.setenv("KIOSK_CA_FILE", "/etc/kiosk/plant-ca.pem")
    monkeypatch.setenv("KIOSK_ALLOW_INSECURE_HTTP", "0")
    settings = load_settings()
    assert (settings.ca_file, settings.allow_insecure_http) == (
        Path("/etc/kiosk/plant-ca.pem"),
        False,
    )
    monkeypatch.setenv("KIOSK_ALLOW_INSECURE_HTTP", "perhaps")
    with pytest.raises(ConfigError, match="allow_insecure_http: should be true or false, not .perhaps."):
        load_settings()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"", "no CA certificate in PEM form in it"),
        (b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", "no CA"),
    ],
)
def test_an_unusable_ca_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    ca_file = tmp_path / "plant-ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    with pytest.raises(tls.TLSConfigError) as refused:
        tls.client_context(ca_file)
    message = str(refused.value)
    assert message.startswith(f"ca_file {ca_file}: {problem}")
    assert "\n" not in message and "KIOSK_CA_FILE" in message


def test_the_station_refuses_to_start_on_insecure_http_or_a_missing_ca_file(
    tmp_path: Path,
) -> None:
    """The real `kiosk` command: one line on stderr, no traceback, before any screen."""
    insecure = kiosk("--server", "http://mes.plant.example:8600")
    assert insecure.returncode == 3
    assert insecure.stderr.startswith("error: server_url http://mes.plant.example:8600 is plain")
    assert insecure.stderr.count("\n") == 1 and "Traceback" not in insecure.stderr

    missing = kiosk("--server", "https://127.0.0.1:1", KIOSK_CA_FILE=str(tmp_path / "nope.pem"))
    assert missing.returncode == 3
    assert missing.stderr == (
        f"error: ca_file {tmp_path / 'nope.pem'}: no such file; point ca_file (KIOSK_CA_FILE) "
        "at the plant CA bundle, a PEM file\n"
    )


def kiosk(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GOOD_TERMINAL, **env},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


# --- enroll and the station over https ----------------------------------------------------------


def test_enroll_and_sync_over_https_with_the_plant_ca(
    https_server: TLSServer,
    certs: Certs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = https_server.service.add_station("ST-TLS-1", "ASSEMBLY")

    # Without the CA: refused with the reason, before the code is sent.
    assert main(["enroll", "--server", https_server.url, "--code", code]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: cannot enroll at {https_server.url}: the server's certificate")
    assert "(unknown CA)" in err and err.endswith("; the code is not used up\n")

    monkeypatch.setenv("KIOSK_CA_FILE", str(certs.plant.pem))
    assert main(["enroll", "--server", https_server.url, "--code", code]) == 0
    assert "enrolled as station ST-TLS-1" in capsys.readouterr().out

    # The CA given in the environment is kept in the config for the station's next start.
    monkeypatch.delenv("KIOSK_CA_FILE")
    settings = load_settings()
    assert (settings.server_url, settings.ca_file) == (https_server.url, certs.plant.pem)
    # `kiosk outbox sync` goes through station.backend(), like the station itself.
    assert main(["outbox", "sync"]) == 0
    assert "applied: 0   refused: 0   waiting: 0" in capsys.readouterr().out


def _non_loopback_name() -> str:
    """This machine's host name: not literally loopback, yet it resolves to an address here."""
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, None, socket.AF_INET)
    except OSError:
        pytest.skip(f"host name {name!r} does not resolve")
    if tls.is_loopback(name):
        pytest.skip(f"host name {name!r} is literally loopback")
    return name


@pytest.fixture
def http_by_name(service: ExecutionService) -> Iterator[TLSServer]:
    """The plain http server reached by this machine's host name, as if it were another one."""
    name = _non_loopback_name()
    address = socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
    port = free_port()
    config = uvicorn.Config(
        create_app(service), host=str(address), port=port, log_level="warning", lifespan="off"
    )
    with uvicorn_in_thread(config):
        yield TLSServer(f"http://{name}:{port}", service)


def test_insecure_http_is_refused_without_the_flag_and_works_with_it(
    http_by_name: TLSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = http_by_name.url
    code = http_by_name.service.add_station("ST-PLAIN", "ASSEMBLY")

    assert main(["enroll", "--server", url, "--code", code]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: server_url {url} is plain http to another machine")
    assert err.count("\n") == 1

    write_config("allow_insecure_http = true\n")
    assert main(["enroll", "--server", url, "--code", code]) == 0  # the code was not spent
    assert main(["outbox", "sync"]) == 0
    assert "applied: 0" in capsys.readouterr().out

    write_config(default_config_file().read_text().replace("= true", "= false"))
    assert main(["outbox", "sync"]) == 3
    assert "is plain http to another machine" in capsys.readouterr().err


@pytest.mark.slow
async def test_the_embedded_server_stays_plain_http_on_loopback_and_works() -> None:
    settings = load_settings()
    assert settings.server_url is None and settings.ca_file is None
    with backend(settings) as found:
        assert found.url.startswith("http://127.0.0.1:")
        async with ExecutionClient(found.url, found.token) as api:
            assert (await api.station()).name == settings.station_name


# --- kiosk serve --------------------------------------------------------------------------------


@pytest.mark.slow
def test_kiosk_serve_with_a_certificate_serves_https(certs: Certs, tmp_path: Path) -> None:
    port = free_port()
    args = [
        "--port",
        str(port),
        "--tls-cert",
        str(certs.good.cert),
        "--tls-key",
        str(certs.good.key),
    ]
    args += ["--database-url", f"sqlite:///{tmp_path / 'plant.db'}"]
    args += ["--secret-file", str(tmp_path / "plant-secret")]
    with server_process(*args, data_dir=tmp_path / "data", log=tmp_path / "serve.log") as proc:
        url = f"https://127.0.0.1:{port}/health"
        context = tls.client_context(certs.plant.pem)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                answer = httpx.get(url, verify=context, timeout=2)
                break
            except httpx.ConnectError as exc:
                if tls.diagnose(exc) is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
        # No plain http on that port, and no https for a client without the plant CA.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        with pytest.raises(httpx.ConnectError) as untrusted:
            httpx.get(url, verify=tls.client_context(None), timeout=2)
        assert tls.diagnose(untrusted.value) is not None
    assert f"Uvicorn running on https://127.0.0.1:{port}" in (tmp_path / "serve.log").read_text()


def _mismatched(certs: Certs) -> list[str]:
    return ["--tls-cert", str(certs.good.cert), "--tls-key", str(certs.expired.key)]


def _encrypted_key(certs: Certs, tmp_path: Path) -> list[str]:
    key = serialization.load_pem_private_key(certs.good.key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return ["--tls-cert", str(certs.good.cert), "--tls-key", str(locked)]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda c, t: ["--tls-cert", str(c.good.cert)],
            "error: --tls-cert and --tls-key go together: give both, or neither for http",
        ),
        (
            lambda c, t: ["--tls-key", str(c.good.key)],
            "error: --tls-cert and --tls-key go together",
        ),
        (
            lambda c, t: ["--tls-cert", str(t / "nope.pem"), "--tls-key", str(c.good.key)],
            "error: --tls-cert {t}/nope.pem: No such file or directory",
        ),
        (
            lambda c, t: ["--tls-cert", str(c.good.cert), "--tls-key", str(t)],
            "error: --tls-key {t}: is a directory, not a PEM file",
        ),
        (
            lambda c, t: ["--tls-cert", str(c.good.key), "--tls-key", str(c.good.key)],
            "error: --tls-cert {key}: no PEM certificate in it",
        ),
        (
            lambda c, t: _mismatched(c),
            "error: --tls-key {expired_key} is not the private key of the certificate in "
            "--tls-cert {cert}",
        ),
        (
            lambda c, t: ["--tls-cert", str(c.good.cert), "--tls-key", str(c.good.cert)],
            "error: --tls-key {cert}: no usable PEM private key in it",
        ),
        (_encrypted_key, "error: --tls-key {t}/locked.key: protected by a passphrase"),
    ],
)
def test_kiosk_serve_refuses_bad_tls_files_in_one_line(
    certs: Certs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_args: Callable[[Certs, Path], list[str]],
    message: str,
) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'never.db'}"]
    assert main(["serve", *make_args(certs, tmp_path), *database]) == 2
    err = capsys.readouterr().err
    expected = message.format(
        t=tmp_path, key=certs.good.key, cert=certs.good.cert, expired_key=certs.expired.key
    )
    assert err.startswith(expected), err
    assert err.count("\n") == 1
    assert not (tmp_path / "never.db").exists()  # refused before the database was touched


def test_the_unreadable_key_of_a_server_is_refused(
    certs: Certs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    key = tmp_path / "server.key"
    key.write_bytes(certs.good.key.read_bytes())
    key.chmod(0)
    assert main(["serve", "--tls-cert", str(certs.good.cert), "--tls-key", str(key)]) == 2
    assert capsys.readouterr().err == f"error: --tls-key {key}: Permission denied\n"


# --- kiosk doctor -------------------------------------------------------------------------------


def doctor(*args: str, **env: str) -> list[str]:
    done = kiosk("doctor", *args, **env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout.splitlines() + [f"rc={done.returncode}"]


def test_doctor_is_all_ok_for_an_enrolled_station_with_the_plant_ca(
    https_server: TLSServer, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIOSK_CA_FILE", str(certs.plant.pem))
    code = https_server.service.add_station("ST-TLS-2", "ASSEMBLY")
    assert main(["enroll", "--server", https_server.url, "--code", code]) == 0
    monkeypatch.delenv("KIOSK_CA_FILE")  # from here on, from the config enroll wrote

    out = doctor()

    assert out[-1] == "rc=0", out
    assert out[2].startswith(
        f"ok   TLS: the certificate of 127.0.0.1 is verified by the plant CA in {certs.plant.pem}"
        ", valid until "
    )
    assert out[3] == f"ok   server {https_server.url} answers /health"
    assert out[5] == f"ok   station ST-TLS-2 (ASSEMBLY) is enrolled at {https_server.url}"


@pytest.mark.parametrize(
    ("which", "with_ca", "problem"),
    [
        (
            "good",
            False,
            "PROBLEM TLS: the server's certificate is signed by a CA this station does not "
            "trust (unknown CA): set ca_file (KIOSK_CA_FILE) to the plant CA bundle that signed it",
        ),
        (
            "wrong_name",
            True,
            "PROBLEM TLS: the server's certificate is not valid for 127.0.0.1 (hostname "
            "mismatch): reissue it with subjectAltName IP:127.0.0.1, or use a name it lists",
        ),
        (
            "expired",
            True,
            "PROBLEM TLS: the server's certificate has expired: renew it with the plant CA",
        ),
    ],
)
def test_doctor_names_why_a_certificate_does_not_verify(
    serve_tls: Callable[[Issued], TLSServer],
    certs: Certs,
    which: str,
    with_ca: bool,
    problem: str,
) -> None:
    server = serve_tls(getattr(certs, which))
    env = {"KIOSK_CA_FILE": str(certs.plant.pem)} if with_ca else {}

    out = doctor("--server", server.url, **env)

    assert out[-1] == "rc=1"
    assert out[2].startswith(problem), out
    assert out[3] == f"PROBLEM server {server.url} refused at TLS: fix the TLS problem above"


def test_doctor_reports_a_missing_ca_file(https_server: TLSServer, tmp_path: Path) -> None:
    out = doctor("--server", https_server.url, KIOSK_CA_FILE=str(tmp_path / "nope.pem"))

    assert out[-1] == "rc=1"
    assert out[2] == (
        f"PROBLEM TLS: ca_file {tmp_path / 'nope.pem'}: no such file; point ca_file "
        "(KIOSK_CA_FILE) at the plant CA bundle, a PEM file"
    )


def test_doctor_on_insecure_http_to_another_machine(http_by_name: TLSServer) -> None:
    refused = doctor("--server", http_by_name.url)
    assert refused[-1] == "rc=1"
    assert refused[2].startswith(
        f"PROBLEM TLS: server_url {http_by_name.url} is plain http to another machine"
    )
    assert "allow_insecure_http = true" in refused[2]

    allowed = doctor("--server", http_by_name.url, KIOSK_ALLOW_INSECURE_HTTP="true")
    host = http_by_name.url.split("//")[1].split(":")[0]
    assert allowed[2] == (
        f"ok   TLS: none, plain http to {host} (insecure allowed by allow_insecure_http)"
    )
    assert allowed[3] == f"ok   server {http_by_name.url} answers /health"


def test_doctor_says_nothing_of_tls_for_loopback_http(tmp_path: Path) -> None:
    out = doctor("--server", f"http://127.0.0.1:{free_port()}")
    assert not any("TLS" in line for line in out), out
