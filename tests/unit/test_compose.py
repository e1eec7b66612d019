"""compose.yaml (and the Dockerfile it builds) match the code: every environment variable set for
the gateway is a setting (or an upstream key the shipped catalog names, or one its own command
reads), every `gateway` command it runs or tells you to run parses, every probe path exists."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

import gateway.settings as settings_module
from gateway.cli import build_parser
from gateway.health import health, ready

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
GATEWAY_IMAGE = "llm-routing-gateway:local"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def gateway_services() -> dict[str, dict[str, Any]]:
    """The services running the gateway image (the replicas and the migration)."""
    services = compose()["services"]
    found = {name: s for name, s in services.items() if s.get("image") == GATEWAY_IMAGE}
    assert found, "no service runs the gateway image"
    return found


def setting_names() -> set[str]:
    """Every environment variable the settings classes read (pydantic-settings, prefix + field)."""
    names = set()
    for value in vars(settings_module).values():
        if isinstance(value, type) and issubclass(value, BaseSettings):
            prefix = value.model_config.get("env_prefix", "")
            names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def catalog_key_names() -> set[str]:
    catalog = tomllib.loads((ROOT / "providers/catalogs/gpt-oss-20b.toml").read_text())
    return {e["api_key_env"] for e in catalog["endpoints"] if e.get("api_key_env")}


def scripts_of(command: Any) -> list[str]:
    """The shell text of a command (`sh -c ...`), or the command itself as one line."""
    if isinstance(command, list):
        if command[:2] == ["sh", "-c"]:
            return [command[2]]
        return [shlex.join(command)]
    return [command]


def gateway_invocations(script: str) -> list[list[str]]:
    """The arguments of every `gateway ...` the shell text runs."""
    found = []
    for part in re.split(r"&&|\|\||;|\|", script):
        words = shlex.split(part)
        while words and words[0] in ("exec", "env"):
            words = words[1:]
        if words and words[0] == "gateway":
            found.append(words[1:])
    return found


def parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`gateway {shlex.join(argv)}` is not a command the CLI has ({exc.code})")


def test_every_environment_variable_is_read_by_the_gateway() -> None:
    known = setting_names() | catalog_key_names()
    for name, service in gateway_services().items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        scripts = " ".join(scripts_of(service.get("command", [])))
        for variable in environment:
            read_by_command = f"$${variable}" in scripts or f"${{{variable}}}" in scripts
            assert variable in known or read_by_command, (
                f"{name} sets {variable}, which no setting, catalog key or command reads"
            )


def test_the_dockerfile_sets_only_settings() -> None:
    known = setting_names()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                assert pair.split("=", 1)[0] in known, f"Dockerfile sets unknown {pair}"


def test_every_gateway_command_exists() -> None:
    runs = []
    for service in gateway_services().values():
        for script in scripts_of(service.get("command", [])):
            runs += gateway_invocations(script)
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None
    runs += gateway_invocations(shlex.join(yaml.safe_load(cmd.group(1))))
    assert ["serve", "--no-migrate"] in runs and ["migrate"] in runs
    for argv in runs:
        parses(argv)


def test_commands_the_comments_and_readme_tell_you_to_run_exist() -> None:
    services = set(compose()["services"])
    text = COMPOSE.read_text() + (ROOT / "README.md").read_text()
    told = re.findall(r"docker compose exec (\S+) gateway ([^\n#`]*)", text)
    assert told, "no `docker compose exec ... gateway ...` example found"
    for service, rest in told:
        assert service in services, f"`docker compose exec {service}`: no such service"
        parses(shlex.split(rest))
    for scaled in re.findall(r"--scale (\w[\w-]*)=", text):
        assert scaled in services, f"`--scale {scaled}=`: no such service"


def test_health_checks_probe_paths_the_gateway_serves() -> None:
    served = set(health.paths) | set(ready.paths)
    for name, service in gateway_services().items():
        check = " ".join(map(str, (service.get("healthcheck") or {}).get("test", [])))
        for path in re.findall(r"http://127\.0\.0\.1:8000(/[\w/]*)", check):
            assert path in served, f"{name}'s health check probes {path}"
