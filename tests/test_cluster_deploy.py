"""docker-compose.yml scales: postgres with a healthcheck and a named volume, migrations once, workers
without fixed names or ports (`--scale worker=4`), two web replicas behind the bundled nginx with caching,
and a multi-stage, non-root image. `docker compose config` runs where the compose plugin is installed; the
command lines themselves run as processes in test_cluster_workers/web/config.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from aggregator import cli
from tests.cluster_processes import compose_services
from tests.conftest import REPO_ROOT


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def test_compose_runs_each_role_of_the_cluster_with_the_clis_own_options() -> None:
    services = compose_services()
    parser = cli.build_parser()
    roles = {}
    for name in ("worker", "publisher", "web"):
        args = parser.parse_args(services[name]["command"])  # type: ignore[arg-type]
        roles[name] = args.role
        assert args.handler is parser.parse_args(["run"]).handler
        # nothing that pins one container: `--scale` adds more of the same
        assert "container_name" not in services[name] and "ports" not in services[name]
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert str(services[name]["environment"]["AGGREGATOR_STORE"]).startswith("postgresql://")  # type: ignore[index]
    assert roles == {"worker": "worker", "publisher": "publisher", "web": "web"}
    assert services["web"]["deploy"] == {"replicas": 2}
    migrate = services["migrate"]
    assert parser.parse_args(migrate["command"]).handler is parser.parse_args(["migrate"]).handler  # type: ignore[arg-type]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_postgres_has_a_healthcheck_and_a_named_volume_and_nginx_caches_the_web_replicas() -> None:
    services = compose_services()
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])  # type: ignore[index]
    assert postgres["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    import yaml

    assert "pgdata" in yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["volumes"]
    nginx = services["nginx"]
    assert nginx["ports"] == ["127.0.0.1:8080:80"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]  # type: ignore[operator]
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    for directive in ("proxy_cache_path", "proxy_cache feeds;", "proxy_cache_revalidate on;", "server web:8080;"):
        assert directive in conf


def test_the_image_is_built_in_stages_and_runs_as_a_user() -> None:
    lines = [line.strip() for line in (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")


@pytest.mark.skipif(not _has_compose(), reason="the docker compose plugin is not installed here")
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
