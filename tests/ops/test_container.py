"""The image: built with podman from the Containerfile (on a local Debian base, as CI has no registry), run
against this machine's PostgreSQL and Redis with migrations on start asked for explicitly; /readyz is ready,
an administrator made with the CLI inside the container signs in through it and forward auth lets them through;
it runs as a non-root user and its HEALTHCHECK passes. podman and the base image come from tools/test-prereqs.sh
(the recipe in shared/reference/testing-recipes.md); their absence is a failure."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_SERVER, REDIS_TEST_URL
from tests.ops.servers import ROOT, SECRET_KEY, free_port, password_sign_in, wait_for

BASE_IMAGE = "localhost/debian-base:bookworm"
IMAGE = "localhost/gateway:test"
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n'
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"  # pip inside the build trusts what this machine trusts


def podman(*args: str, conf: Path, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "--runtime", "runc", *args], env={**os.environ, "CONTAINERS_CONF": str(conf)},
                          capture_output=True, text=True, timeout=timeout, input=stdin)


@pytest.fixture(scope="module")
def conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("podman") / "containers.conf"
    path.write_text(CONTAINERS_CONF)
    return path


@pytest.fixture(scope="module")
def image(conf: Path) -> str:
    assert shutil.which("podman"), "podman is not installed: run tools/test-prereqs.sh"
    assert podman("image", "exists", BASE_IMAGE, conf=conf).returncode == 0, \
        f"{BASE_IMAGE} is missing: run tools/test-prereqs.sh"
    build = ["build", "--network", "host", "--format", "docker", "--build-arg", f"BASE={BASE_IMAGE}", "-t", IMAGE,
             "-f", str(ROOT / "Containerfile")]
    if Path(HOST_CA).is_file():
        build += ["--volume", f"{HOST_CA}:/run/host-ca.pem:ro", "--build-arg", "PIP_CERT=/run/host-ca.pem"]
    built = podman(*build, str(ROOT), conf=conf, timeout=420)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


@pytest.fixture
def empty_schema() -> Iterator[str]:
    schema = f"c_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # The role the tests connect as (trust auth): inside the container the OS user is another one.
    yield f"postgresql://{getpass.getuser()}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def test_the_image_serves_against_postgresql_and_redis(image: str, conf: Path, empty_schema: str) -> None:
    port = free_port()
    name = f"gateway-test-{uuid.uuid4().hex[:8]}"
    # A Redis database of its own: the image has no key prefix setting, and other tests' rate-limit counters for
    # 127.0.0.1 must not refuse its sign-in.
    redis_url = REDIS_TEST_URL.rsplit("/", 1)[0] + "/13"
    env = {"DATABASE_URL": empty_schema, "REDIS_URL": redis_url, "SECRET_KEY": SECRET_KEY, "PORT": str(port),
           "TOKEN_ENCRYPTION_KEYS": "x1vUJ3GXj4gWn3LkqOFd6V5Oq6l2sHfQ0t0Zf2J8m1c=", "MIGRATE_ON_START": "1",
           "JOBS_QUEUE_NAME": f"test-{name}", "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "2"}
    flags = [part for key, value in env.items() for part in ("-e", f"{key}={value}")]
    started = podman("run", "-d", "--name", name, "--network", "host", *flags, image, conf=conf)
    assert started.returncode == 0, started.stderr
    base = f"http://127.0.0.1:{port}"
    try:
        def logs() -> str:
            answer = podman("logs", name, conf=conf)
            return (answer.stdout + answer.stderr)[-3000:]

        try:
            wait_for(lambda: requests.get(f"{base}/readyz", timeout=3).status_code == 200, "the container is ready",
                     120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        assert requests.get(f"{base}/readyz", timeout=3).json()["checks"] == {"database": "ok", "redis": "ok"}
        made = podman("exec", "-i", name, "flask", "--app", "app", "users", "create-admin", "ops@example.com",
                      "--password-stdin", conf=conf, stdin="container-admin-password\n")
        assert made.returncode == 0, made.stdout + made.stderr
        session = password_sign_in(base, "ops@example.com", "container-admin-password")
        verified = session.get(f"{base}/auth/verify", timeout=5)
        assert verified.status_code == 200, logs()
        assert verified.headers["X-Auth-Request-Email"] == "ops@example.com"
        assert podman("exec", name, "id", "-u", conf=conf).stdout.strip() == "10001"  # not root
        health = podman("healthcheck", "run", name, conf=conf)
        assert health.returncode == 0, health.stdout + health.stderr
        assert '"logger": "gateway.access"' in logs() or '"logger": "gateway.access"' in podman(
            "logs", name, conf=conf).stdout + podman("logs", name, conf=conf).stderr  # LOG_FORMAT=json
    finally:
        podman("rm", "-f", "-t", "2", name, conf=conf)
