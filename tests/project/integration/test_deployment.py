"""The deployment files name only things that exist and say what they promise.

docker-compose.yml and the Dockerfile name only real build targets, console scripts, CLI commands
and settings; the compose file is valid against the compose-spec schema (vendored in
tests/support/compose-spec.json) and, where the `docker-compose` binary is installed, for
`docker-compose config`; services restart, wait for PostgreSQL over TCP, read .env, keep objects
in MinIO so that tasks scales, and share no volume. Dependency versions are locked in
constraints.txt, which the Makefile (runtime for `make run`, + dev extras for `make test`) and the
Dockerfile install with. (The images themselves need a Docker engine to build.)"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from atelier_common.cli import build_parser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.project.unit.test_settings_env import SETTINGS, env_names, example_names

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = {"billing": "atelier-billing", "tasks": "atelier-tasks", "gateway": "atelier-gateway"}
# Settings that say where things are: inside the compose network they must be the stack's own,
# whatever a copied .env says.
PLACEMENT = re.compile(
    r"(_HOST|_PORT|_ADDRESS|_DATABASE_URL)$|^S3_"
    r"|^(ATELIER_DATA_DIR|TASKS_STORAGE|LOCAL_PAYMENT_WEBHOOK_URL)$"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_minio_and_the_three_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"postgres", "minio", "billing", "tasks", "gateway"}
    targets = set(re.findall(r"^FROM \S+ AS (\w+)", (ROOT / "Dockerfile").read_text(), re.M))
    for name in SETTINGS:
        assert compose["services"][name]["build"]["target"] == name
        assert name in targets
    init = (ROOT / "deploy/postgres-init.sql").read_text()
    for name in SETTINGS:
        url = compose["services"][name]["environment"][f"{name.upper()}_DATABASE_URL"]
        assert url.rsplit("/", 1)[1] in init


def test_compose_file_is_valid_against_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests/support/compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_docker_compose_config_accepts_the_stack(tmp_path: Path) -> None:
    """`docker-compose config` (Debian package docker-compose; .ci/run installs it when it can)
    parses, interpolates and validates the file the way `up` would, with .env from .env.example."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    compose_file = str(tmp_path / "docker-compose.yml")
    done = subprocess.run(
        [binary, "--project-directory", str(tmp_path), "-f", compose_file, "config"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    tasks = rendered["services"]["tasks"]["environment"]
    assert tasks["TASKS_STORAGE"] == "s3" and tasks["S3_ENDPOINT_URL"] == "http://minio:9000"
    # A value from .env arrives in the container (env_file), unless the stack pins it.
    assert rendered["services"]["tasks"]["environment"]["TASKS_DAILY_LIMIT"] == "200"
    assert rendered["services"]["billing"]["environment"]["BILLING_GRPC_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_setting_named_in_compose_exists(compose: dict[str, Any], service: str) -> None:
    environment = compose["services"][service]["environment"]
    unknown = set(environment) - env_names(SETTINGS[service])
    assert not unknown, f"{service} is given settings it does not read: {sorted(unknown)}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_services_restart_and_read_env_file(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec["restart"] == "unless-stopped"
    env_file = spec["env_file"]
    files = [env_file] if isinstance(env_file, str) else env_file
    assert ".env" in [f if isinstance(f, str) else f["path"] for f in files]
    # Whatever .env says (it starts as a copy of .env.example), where things are is the stack's.
    placed = {n for n in example_names() if PLACEMENT.search(n)} & env_names(SETTINGS[service])
    unpinned = placed - set(spec["environment"])
    assert not unpinned, f"{service}: a copied .env would decide {sorted(unpinned)}"


def test_env_example_values_stand_alone() -> None:
    """Env files are not shell: Compose v1 keeps a trailing `# comment` as part of the value."""
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", line), f"not a bare value: {line!r}"


def test_postgres_is_ready_only_over_tcp(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["restart"] == "unless-stopped"
    check = " ".join(postgres["healthcheck"]["test"])
    assert re.search(r"pg_isready .*-h 127\.0\.0\.1", check), check
    for name in SETTINGS:
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"


def test_tasks_keeps_objects_in_minio_and_scales(compose: dict[str, Any]) -> None:
    services = compose["services"]
    tasks = services["tasks"]
    env = tasks["environment"]
    assert env["TASKS_STORAGE"] == "s3"
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["S3_ADDRESSING_STYLE"] == "path"
    # The bucket the tasks service uses is the one the one-shot init service creates.
    init = services["minio-init"]
    assert init["entrypoint"][-1] == f"atelier/{env['S3_BUCKET']}"
    assert "--ignore-existing" in init["entrypoint"]
    assert init["environment"]["MC_HOST_atelier"].endswith("@minio:9000")
    assert init["restart"] == "on-failure"
    assert tasks["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["minio"]["restart"] == "unless-stopped"
    assert services["minio"]["healthcheck"]["test"]
    assert env["S3_ACCESS_KEY_ID"] in services["minio"]["environment"]["MINIO_ROOT_USER"]
    # `--scale tasks=3` needs: no fixed container name, no host port, no volume of its own.
    assert "container_name" not in tasks and "ports" not in tasks and "volumes" not in tasks
    assert env["TASKS_METRICS_PORT"] == "0"


def test_no_volume_is_shared_between_services(compose: dict[str, Any]) -> None:
    owners: dict[str, list[str]] = {}
    for name, spec in compose["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            owners.setdefault(source, []).append(name)
    shared = {source: names for source, names in owners.items() if len(names) > 1}
    assert not shared, f"volumes mounted by several services: {shared}"
    assert set(compose["volumes"]) == {s for s in owners if not s.startswith(".")}


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "var", "gen", ".env", "**/__pycache__", ".mypy_cache"):
        assert entry in ignored, entry
    copied = re.findall(r"^COPY (.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert source not in ignored, f"the Dockerfile copies {source}, which is ignored"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_command_named_exists(compose: dict[str, Any], service: str) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert SCRIPTS[service] in scripts
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = dockerfile.split(f"AS {service}\n", 1)[1].split("\nFROM ", 1)[0]
    commands = [compose["services"][service].get("command")]
    commands += [
        json.loads(line.removeprefix("CMD"))
        for line in stage.splitlines()
        if line.startswith("CMD")
    ]
    # Each command line is parsed by the service's real parser (atelier_common.cli).
    cli = importlib.import_module(scripts[SCRIPTS[service]].split(":")[0])
    parser = build_parser(cli.PROGRAM, None, cli.COMMANDS)
    for command in filter(None, commands):
        if isinstance(command, list) and command[0] != "sh":  # the entrypoint's arguments
            invocations = [command]
        else:  # a shell line: every "atelier-<service> ..." in it
            text = command[-1] if isinstance(command, list) else command
            invocations = [
                found.split() for found in re.findall(rf"{SCRIPTS[service]}((?: [\w-]+)+)", text)
            ]
        assert invocations, f"{service}: {command!r} runs no {SCRIPTS[service]} command"
        for words in invocations:
            try:
                parser.parse_args(words)
            except SystemExit:
                pytest.fail(f"{service}: {' '.join(words)!r} is not a command it has")


# --- dependency lock -----------------------------------------------------------------------------


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            assert canonicalize_name(name) not in pins, f"{name} is pinned twice"
            pins[canonicalize_name(name)] = version
    return pins


def test_lock_pins_every_dependency_within_pyproject() -> None:
    """A dependency added to pyproject.toml without `make lock` fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [
        *project["project"]["dependencies"],
        *[r for extra in project["project"]["optional-dependencies"].values() for r in extra],
        *project["build-system"]["requires"],
    ]
    pins = lock_pins()
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}: run `make lock`"
        )
    assert "pip" in pins


def make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run in a checkout where nothing is installed yet."""
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def pip_installs(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if " -m pip install" in line]


def test_make_run_installs_runtime_only_and_make_test_adds_dev_extras() -> None:
    run = pip_installs(make_dry_run("run"))
    assert run, "make run installs nothing?"
    assert all("PIP_CONSTRAINT=" in line and "constraints.txt" in line for line in run), run
    assert any(line.rstrip().endswith("-e .") for line in run), run
    assert not any("[dev]" in line for line in run), run

    test = pip_installs(make_dry_run("test"))
    assert all("constraints.txt" in line for line in test), test
    assert any("-e '.[dev]'" in line for line in test), test
    # The dev install is its own step after the runtime one, so `make run` then `make test` in
    # one checkout only adds the extras to the existing .venv.
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(DEV\): \$\(RUNTIME\)$", makefile, re.M)
    assert re.search(r"^run: install-runtime$", makefile, re.M)
    assert re.search(r"^lock: ", makefile, re.M)


def test_dockerfile_installs_with_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY .*constraints\.txt", dockerfile, re.M)
    assert "PIP_CONSTRAINT=/src/constraints.txt" in dockerfile
    assert "[dev]" not in dockerfile


# --- README ----------------------------------------------------------------------------------


def test_readme_says_only_what_runs_today() -> None:
    """Finding 15: the opening promised a browser workbench before there was one (and, before
    issue 11, WeChat Pay). Since issue 13 the README opens with the workbench's screenshots and
    how to open it; since issue 12 the cn market runs on its own vendors, RunningHub included."""
    readme = (ROOT / "README.md").read_text()
    intro = readme.split("\n## ", 1)[0]
    paragraphs = intro.split("\n\n")
    screens = re.findall(r'<img src="(docs/screens/[^"]+\.png)"', paragraphs[1])
    assert screens and all((ROOT / s).is_file() for s in screens), screens
    assert "make run" in intro and "http://127.0.0.1:8080/" in intro and "workbench" in intro
    assert "MARKET=local" in intro and "MARKET=global" in intro and "MARKET=cn" in intro
    assert "/docs" in intro
    assert any(p.startswith("What runs today:") and "RunningHub" in p for p in paragraphs)


def test_readme_names_only_make_targets_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", readme))
    assert {"run", "test", "lock", "install"} <= named
    assert named <= targets, f"README names make targets that do not exist: {named - targets}"
    assert "--scale tasks=3" in readme and "MinIO" in readme and "cp .env.example .env" in readme
