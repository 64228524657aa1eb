"""deploy/compose.yaml and deploy/nginx.conf stay true to the scale-out shape README describes.

No registry is reachable here, so the compose file's public images (PostgreSQL, Redis, nginx) cannot be pulled:
tools/compose-local.sh (run by .ci/run after the suite) brings the file up with podman-compose and stand-ins built
from Debian's packages (deploy/compose.local.yaml), tests/ops/test_scale_out.py runs the same shape from the
checkout and tests/ops/test_container.py runs the image. These checks keep the file itself from drifting: every
service the README names, migrations as their own one-off step, the entry point's commands, shared secrets, and nginx's
forward-auth block carrying every directive of README's block.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def entrypoint_commands() -> set[str]:
    text = (DEPLOY / "entrypoint.sh").read_text()
    return set(re.findall(r"^\s+([a-z]+)\)\s*$", text, flags=re.MULTILINE))


def test_the_scale_out_services_are_all_there():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "gateway1", "gateway2", "worker", "nginx"} <= set(services)
    gateways = [services[name] for name in ("gateway1", "gateway2", "worker", "migrate")]
    for service in gateways:  # one image, one env file: every process shares SECRET_KEY and the Fernet keys
        assert service["image"] == "localhost/gateway:latest"
        assert service["build"]["dockerfile"] == "Containerfile"
        assert service["env_file"] == ".env"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert [services[name]["command"] for name in ("gateway1", "gateway2", "worker", "migrate")] == [
        ["serve"], ["serve"], ["worker"], ["migrate"]]
    assert {"serve", "worker", "migrate"} <= entrypoint_commands()
    assert (ROOT / "Containerfile").is_file()


def test_migrations_run_once_before_the_gateways_and_never_on_restart():
    services = compose()["services"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("gateway1", "gateway2", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "MIGRATE_ON_START" not in services[name]["environment"]


def test_nginx_mounts_the_conf_that_balances_both_gateways():
    services = compose()["services"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["nginx"]["volumes"]
    conf = (DEPLOY / "nginx.conf").read_text()
    assert re.search(r"upstream gateways \{\s*server gateway1:8000;\s*server gateway2:8000;\s*\}", conf)


def _directives(block: str) -> set[str]:
    """The block's directives, with addresses that differ between README and compose (proxy_pass) left out."""
    lines = {re.sub(r"\s+", " ", line.split("#")[0].strip()) for line in block.splitlines()}
    return {line for line in lines if line.endswith(";") and not line.startswith("proxy_pass ")}


def test_nginx_conf_carries_every_directive_of_readmes_forward_auth_block():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```nginx\n((?:proxy_cache_path [^\n]*\n\n)?"  # the decision cache's zone (http level)
                      r"server \{\n    server_name app\.example\.com;.*?)```", readme, flags=re.DOTALL)
    assert block, "README's nginx forward-auth block"
    wanted = _directives(block.group(1))
    assert {"auth_request /_gateway_verify;", "proxy_set_header X-Original-Method $request_method;",
            "proxy_cache gateway_decisions;"} <= wanted
    assert any(line.startswith("proxy_cache_path ") for line in wanted)  # the decision cache's zone, too
    missing = wanted - _directives((DEPLOY / "nginx.conf").read_text())
    assert not missing, f"deploy/nginx.conf lacks README's {sorted(missing)}"
