"""A throw-away shared tracking server for tests: a private PostgreSQL + a real ``mlflow server``.

PostgreSQL listens on a unix socket in a private temporary folder only (``listen_addresses =
''``: no TCP port at all); ``mlflow server`` talks to it through that socket, serves the
artifacts (``--serve-artifacts``, stored under ``<tmp>/artifacts``) and listens on 127.0.0.1.
Everything started is stopped, and the folder removed, on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import answers, wait_until

PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")
MISSING = (
    "PostgreSQL server programs (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; "
    "the tests marked 'server' need them: run .ci/ensure-postgres (as root it installs Debian's postgresql), "
    "or deselect them with -m 'not server'"
)


@dataclass(frozen=True)
class TrackingServer:
    url: str  # http://127.0.0.1:<port>, for MLFLOW_TRACKING_URI
    artifacts: Path  # --artifacts-destination: where the served artifacts lie
    socket_dir: Path  # PostgreSQL's unix socket folder (its only way in)
    pg_port: int  # names the socket file .s.PGSQL.<pg_port>; nothing listens on it over TCP
    pg_data: Path
    admin_password: str = ""  # with authentication: the admin user's ("admin") password

    def __str__(self) -> str:
        return self.url


def postgres_bin() -> Path:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then the newest Debian install."""
    candidates = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=lambda p: _version(p), reverse=True)]
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in PG_PROGRAMS):
            return folder
    raise RuntimeError(MISSING)


def _version(path: str) -> tuple:
    name = Path(path).parent.name
    return tuple(int(part) if part.isdigit() else 0 for part in name.split("."))


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(_as_postgres(command), cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def postgres(root: Path) -> Iterator[tuple[Path, int]]:
    """A PostgreSQL cluster in ``root/data`` with a database ``mlflow`` owned by user ``mlflow``,
    reachable only through the unix socket in ``root``; yields (socket folder, port)."""
    import psycopg2

    bin_dir = postgres_bin()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, log, port = root / "data", root / "postgres.log", free_port()
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "mlflow",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        cwd=root,
    )
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# tests/tracking_server.py: unix socket only, throw-away data\n"
            f"listen_addresses = ''\nunix_socket_directories = '{root}'\nport = {port}\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        try:
            _run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"], cwd=root)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\npostgres log:\n{_tail(log)}") from None
        connection = psycopg2.connect(host=str(root), port=port, user="mlflow", dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE mlflow")
                cursor.execute("CREATE DATABASE mlflow_auth")  # users and permissions, when auth is on
        finally:
            connection.close()
        yield root, port
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"]),
            cwd=root,
            capture_output=True,
            timeout=90,
        )


def _stop(process: subprocess.Popen) -> None:
    """Stop ``mlflow server`` and what it spawned (uvicorn): its own process group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # any child left behind, even after the parent exited
    process.wait()


@contextlib.contextmanager
def tracking_server(timeout: float = 60.0, admin_password: str = "") -> Iterator[TrackingServer]:
    """Start PostgreSQL + ``mlflow server`` (served artifacts) on 127.0.0.1; stop both on exit.

    With ``admin_password``, the server runs the README's authenticated recipe: ``--app-name
    deepfake-auth``, an auth config file (no permission by default, users in PostgreSQL database
    ``mlflow_auth``), the secret key and the admin password from the environment."""
    postgres_bin()  # fail with the clear message before making anything
    root = Path(tempfile.mkdtemp(prefix="pg-"))  # short: a unix socket path must stay under ~107 bytes
    try:
        with postgres(root) as (socket_dir, pg_port):
            artifacts, log_path, port = root / "artifacts", root / "mlflow-server.log", free_port()
            artifacts.mkdir()
            command = [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"postgresql+psycopg2://mlflow@/mlflow?host={socket_dir}&port={pg_port}",
                "--artifacts-destination",
                str(artifacts),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ]
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
            env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner + huey workers: 2 cores
            if admin_password:
                config = root / "auth.ini"
                config.write_text(
                    "[mlflow]\ndefault_permission = NO_PERMISSIONS\nadmin_username = admin\n"
                    f"database_uri = postgresql+psycopg2://mlflow@/mlflow_auth?host={socket_dir}&port={pg_port}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                    "auth_cache_ttl_seconds = 60\n"
                )
                env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
                env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = os.urandom(16).hex()
                env["MLFLOW_AUTH_ADMIN_PASSWORD"] = admin_password
                command += ["--app-name", "deepfake-auth"]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_healthy(process, url, log_path, timeout)
                yield TrackingServer(url, artifacts, socket_dir, pg_port, root / "data", admin_password)
            finally:
                _stop(process)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_healthy(process: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    wait_until(
        lambda: answers(f"{url}/health"),
        timeout,
        f"mlflow server answer on {url}/health",
        process=process,
        output=lambda: _tail(log_path),
    )
