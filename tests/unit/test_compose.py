"""The deployable stack (docker/), checked without a Docker engine (none runs here).

docker/docker-compose.yml is validated by Debian's docker-compose 1.29.2 and read back resolved
(anchors merged, ``${VAR:-default}`` filled in); every variable it gives hookline is a setting
whose value validates; the worker scales; Prometheus scrapes what compose runs (checked by
promtool); Grafana's provisioning points at what compose mounts; the Dockerfile runs as non-root
from the checkout. docker-compose and promtool missing is a failure (``scripts/services``
installs them), never a skip.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hookline.cli.startup import check_backend_urls
from hookline.settings import Settings
from tests.fixtures.processes import run_bounded

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "config" / "prometheus" / "alerts.yml"
GRAFANA = ROOT / "config" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "webhook-retries.json"

HOOKLINE_SERVICES = ("migrate", "api", "worker")
"""The services that run the hookline image; their environment is hookline's settings."""
SERVICES = ("postgres", "redis", *HOOKLINE_SERVICES, "prometheus", "grafana", "jaeger")
"""What issue 11 names."""
TOOL_TIMEOUT_S = 120  # docker-compose (Python) starts in ~1 s; generous for a loaded machine


DEBIAN_PACKAGES = {"docker-compose": "docker-compose", "promtool": "prometheus"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    package = DEBIAN_PACKAGES[name]
    assert path, f"{name} is missing: scripts/services installs it (apt-get install {package})"
    return path


def _compose(compose_file: Path, *args: str, env_dir: Path) -> tuple[int, str, str]:
    """``docker-compose -f compose_file config ARGS`` with a clean environment and an empty
    ``--env-file`` (a developer's exported variables or docker/.env must not decide the result)."""
    env_file = env_dir / "empty.env"
    env_file.touch()
    result = run_bounded(
        [_tool("docker-compose"), "-f", compose_file, "--env-file", env_file, "config", *args],
        timeout_s=TOOL_TIMEOUT_S,
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(env_dir)},
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it."""
    code, out, err = _compose(COMPOSE_FILE, env_dir=tmp_path_factory.mktemp("compose"))
    assert code == 0, err
    config = yaml.safe_load(out)
    assert isinstance(config, dict)
    return config


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "environment as a mapping (docker-compose config)"
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def _setting_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert alias is not None
        names.update(str(choice) for choice in alias.choices)  # type: ignore[union-attr]
    return names


def _not_settings(compose: dict[str, Any]) -> dict[str, set[str]]:
    """Per hookline service, the variables it sets that are no hookline setting."""
    known = _setting_names()
    services = _services(compose)
    return {
        name: unknown
        for name in HOOKLINE_SERVICES
        if (unknown := set(_environment(services[name])) - known)
    }


def _scale_blockers(service: dict[str, Any]) -> list[str]:
    """What stops ``--scale N`` from starting N copies of ``service``."""
    blockers = []
    if "container_name" in service:
        blockers.append(f"container_name {service['container_name']!r}")
    for port in service.get("ports") or []:
        published = port.get("published") if isinstance(port, dict) else port
        if published:
            blockers.append(f"published host port {published}")
    return blockers


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of each bind mount (``docker-compose config`` prints
    ``host:container[:mode]`` with absolute host paths; named volumes have no slash)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        source, target, *_ = str(volume).split(":")
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


# --- (a) the file is valid ---------------------------------------------------------------------


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    code, out, err = _compose(COMPOSE_FILE, "-q", env_dir=tmp_path)
    assert (code, out) == (0, ""), err


def test_docker_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    # The validator above can fail: an unknown key on a service is refused.
    broken = tmp_path / "docker" / "docker-compose.yml"
    broken.parent.mkdir()
    text = COMPOSE_FILE.read_text()
    broken.write_text(text.replace("\n  worker:\n", "\n  worker:\n    no_such_key: 1\n", 1))
    code, _, err = _compose(broken, "-q", env_dir=tmp_path)
    assert code != 0
    assert "no_such_key" in err


# --- (b) what it passes hookline is hookline's settings, and valid ------------------------------


def test_every_variable_given_to_hookline_is_a_setting(compose: dict[str, Any]) -> None:
    assert _not_settings(compose) == {}


def test_a_variable_that_is_no_setting_is_found(compose: dict[str, Any]) -> None:
    # The check above can fail: a misspelt setting would be ignored by hookline without a word.
    typo = copy.deepcopy(compose)
    _services(typo)["worker"]["environment"]["RETRY_WORKER_POLL_INTERVALL"] = "2"
    assert _not_settings(typo) == {"worker": {"RETRY_WORKER_POLL_INTERVALL"}}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in _setting_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


@pytest.mark.parametrize("service", HOOKLINE_SERVICES)
def test_the_settings_each_hookline_service_gets_are_valid(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch, service: str
) -> None:
    environment = _environment(_services(compose)[service])
    for name, value in environment.items():
        # Left unresolved only if written without a default; none is.
        assert "${" not in value, f"{service}: {name}={value} has no default"
        clean_env.setenv(name, value)
    settings = Settings()
    check_backend_urls(settings)  # what `hookline <command>` checks before connecting
    assert urlsplit(settings.effective_database_url).hostname == "postgres"
    assert settings.redis_url is not None
    assert urlsplit(settings.redis_url).hostname == "redis"
    assert settings.api_tokens, "the API never runs without a token"
    assert settings.log_format == "json"
    # Tracing on, exported to the jaeger service's OTLP/HTTP port, one service name per role.
    assert settings.tracing_enabled
    assert urlsplit(settings.otel_exporter_otlp_endpoint).netloc == "jaeger:4318"
    assert settings.otel_service_name == f"hookline-{service}"


def test_the_worker_serves_metrics_to_other_containers(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    for name, value in _environment(_services(compose)["worker"]).items():
        clean_env.setenv(name, value)
    settings = Settings()
    assert settings.metrics_host == "0.0.0.0"  # the default, 127.0.0.1, is out of reach
    assert settings.metrics_port == 9100
    assert "9100" in [str(port) for port in _services(compose)["worker"].get("expose", [])]


# --- (c) the services, their order, and --scale worker=N ------------------------------------


def test_every_service_the_issue_names_exists(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(_services(compose))


def test_the_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    assert _scale_blockers(_services(compose)["worker"]) == []


def test_a_worker_with_a_name_or_a_host_port_is_found_unscalable() -> None:
    # The check above can fail.
    worker = {"container_name": "hookline-worker", "ports": [{"published": 9100, "target": 9100}]}
    assert _scale_blockers(worker) == [
        "container_name 'hookline-worker'",
        "published host port 9100",
    ]


@pytest.mark.parametrize("service", ["api", "worker"])
def test_api_and_worker_start_on_a_migrated_database(compose: dict[str, Any], service: str) -> None:
    depends_on = _services(compose)[service]["depends_on"]
    assert depends_on == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_migrate_runs_once_after_postgres_is_healthy(compose: dict[str, Any]) -> None:
    migrate = _services(compose)["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert _services(compose)["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert _services(compose)["redis"]["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_the_hookline_services_run_the_image_built_from_this_checkout(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    images = {services[name]["image"] for name in HOOKLINE_SERVICES}
    assert len(images) == 1
    for name in HOOKLINE_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    api = services["api"]
    assert api["command"] == ["api", "--host", "0.0.0.0", "--port", "8000"]
    assert [(p["published"], p["target"]) for p in api["ports"]] == [(8000, 8000)]
    assert services["worker"]["command"] == ["worker"]


def test_jaeger_accepts_otlp_over_http(compose: dict[str, Any]) -> None:
    jaeger = _services(compose)["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert _environment(jaeger)["COLLECTOR_OTLP_ENABLED"] == "true"
    assert {p["target"] for p in jaeger["ports"]} >= {16686, 4318}


def test_every_bind_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


# --- (d) Prometheus scrapes the api and every worker, and loads the alert rules ---------------


def _prometheus_config() -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert isinstance(config, dict)
    return config


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    # Checked beside the real alert rules, as compose mounts them; a stub until they exist.
    shutil.copy(PROMETHEUS_CONFIG, tmp_path / "prometheus.yml")
    rules = tmp_path / "alerts.yml"
    if ALERT_RULES.exists():
        shutil.copy(ALERT_RULES, rules)
    else:
        rules.write_text("groups: []\n")
    result = run_bounded(
        [_tool("promtool"), "check", "config", tmp_path / "prometheus.yml"],
        timeout_s=TOOL_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_alert_rules_compose_mounts_beside_its_config(
    compose: dict[str, Any],
) -> None:
    assert _prometheus_config()["rule_files"] == ["alerts.yml"]
    mounts = _bind_mounts(_services(compose)["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    assert mounts["/etc/prometheus/alerts.yml"] == ALERT_RULES


def test_prometheus_scrapes_the_api_and_every_worker(compose: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in _prometheus_config()["scrape_configs"]}
    services = _services(compose)
    # The API: its own port, where the api command listens.
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    api_targets = [t for c in jobs["hookline-api"]["static_configs"] for t in c["targets"]]
    assert api_targets == [f"api:{api_port}"]
    assert jobs["hookline-api"].get("metrics_path", "/metrics") == "/metrics"
    # The workers: every A record of the service name, on the port each one serves /metrics on.
    (worker_sd,) = jobs["hookline-worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"]
    assert worker_sd["type"] == "A"
    assert str(worker_sd["port"]) == _environment(services["worker"])["METRICS_PORT"]
    assert jobs["hookline-worker"].get("metrics_path", "/metrics") == "/metrics"


# --- (e) Grafana's provisioning points at what compose mounts ---------------------------------


def _yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), path
    return loaded


def _datasource_uids(node: object) -> Iterator[str]:
    """Every ``"datasource": {"uid": ...}`` (or plain-string datasource) in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield str(value["uid"])
            elif key == "datasource" and isinstance(value, str):
                yield value
            else:
                yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_uids(item)


def test_grafana_provisioning_matches_the_mounts(compose: dict[str, Any]) -> None:
    grafana = _services(compose)["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = PurePosixPath("/etc/grafana/provisioning")
    assert mounts[str(provisioning)] == GRAFANA / "provisioning"

    # The datasource is compose's Prometheus service, on its port.
    (datasource,) = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    url = urlsplit(datasource["url"])
    assert url.hostname in _services(compose)
    assert url.hostname == "prometheus"
    assert [p["target"] for p in _services(compose)["prometheus"]["ports"]] == [url.port]

    # The dashboard provider reads the directory compose mounts config/grafana/dashboards on.
    (provider,) = _yaml(GRAFANA / "provisioning" / "dashboards" / "hookline.yml")["providers"]
    assert provider["type"] == "file"
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == GRAFANA / "dashboards"
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    # A provisioned dashboard cannot ask for a datasource (__inputs): a uid it names must be the
    # provisioned one, or a datasource variable of its own.
    (datasource,) = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    dashboard = json.loads(DASHBOARD.read_text())
    variables = [
        var["name"]
        for var in dashboard.get("templating", {}).get("list", [])
        if var.get("type") == "datasource"
    ]
    known = {datasource["uid"], datasource["name"], "-- Grafana --", "grafana"}
    known |= {f"${name}" for name in variables} | {f"${{{name}}}" for name in variables}
    unknown = set(_datasource_uids(dashboard)) - known
    assert unknown == set(), f"{DASHBOARD.name} names datasources Grafana will not have"


def test_grafana_anonymous_users_may_only_view(compose: dict[str, Any]) -> None:
    environment = _environment(_services(compose)["grafana"])
    if environment.get("GF_AUTH_ANONYMOUS_ENABLED") == "true":
        assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# --- (f) the image --------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _stages(text: str) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, and the instructions of each stage (from its FROM on)."""
    global_args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default
    return global_args, stages


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), value)


def test_the_image_is_slim_python_in_two_stages() -> None:
    global_args, stages = _stages(DOCKERFILE.read_text())
    assert len(stages) >= 2
    for stage in stages:
        image = _expand(stage[0][1].split()[0], global_args)
        assert re.fullmatch(r"python:3\.1[1-3]-slim(-\w+)?", image), image
    # Nothing is built in the final stage: it copies the builder's virtualenv.
    final = stages[-1]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "pip install" not in runs
    assert not re.search(r"apt-get install|gcc|build-essential", runs)
    assert any(keyword == "COPY" and "--from=" in rest for keyword, rest in final)


def test_the_image_installs_the_package_from_the_checkout() -> None:
    _, stages = _stages(DOCKERFILE.read_text())
    builder = stages[0]
    copied = {
        source.rstrip("/")
        for keyword, rest in builder
        if keyword == "COPY"
        for source in rest.split()[:-1]
        if not source.startswith("--")
    }
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "src"} <= copied
    installs = [rest for keyword, rest in builder if keyword == "RUN" and "pip install" in rest]
    assert installs
    assert any(re.search(r"pip install (--\S+ )*\.(\s|$)", run) for run in installs), installs


def test_the_build_context_holds_what_pip_install_reads_and_no_secrets() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything out, then only what the Dockerfile copies back in: .env, .git, .venv stay out.
    assert patterns[0] == "*"
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert included == {"pyproject.toml", readme, "src"}


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    global_args, stages = _stages(DOCKERFILE.read_text())
    final = stages[-1]
    variables = dict(global_args)
    user = None
    for keyword, rest in final:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            variables[name] = default
        elif keyword == "USER":
            user = _expand(rest, variables)
    assert user is not None, "the final stage sets no USER: it would run as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: a numeric UID lets runAsNonRoot verify it"
    assert int(uid) != 0
    assert not gid or int(gid) != 0


def test_the_image_runs_hookline_with_a_healthcheck_and_a_writable_data_dir() -> None:
    _, stages = _stages(DOCKERFILE.read_text())
    final = dict(stages[-1])  # the last of each instruction, as Docker applies them
    assert json.loads(final["ENTRYPOINT"]) == ["hookline"]
    assert json.loads(final["CMD"]) == ["serve", "--host", "0.0.0.0"]
    assert set(final["EXPOSE"].split()) == {"8000", "9100"}
    assert "urllib.request" in final["HEALTHCHECK"]
    assert "/healthz" in final["HEALTHCHECK"]
    env = " ".join(rest for keyword, rest in stages[-1] if keyword == "ENV")
    data_dir = re.search(r"HOOKLINE_DATA_DIR=(\S+)", env)
    assert data_dir, "HOOKLINE_DATA_DIR is set"
    runs = " ".join(rest for keyword, rest in stages[-1] if keyword == "RUN")
    assert re.search(rf"install -d -o hookline .*{re.escape(data_dir.group(1))}", runs)


def test_nothing_is_piped_from_the_network_into_a_shell() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"(curl|wget)[^|\n]*\|\s*(ba|z|da)?sh", text)
    assert "ADD http" not in text
