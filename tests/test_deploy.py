"""docs/deploy/ is runnable as written: the manifests are valid for the systems that read them,
their commands parse with the real CLI, every variable they set is one the indexer (or botocore)
reads, their retry policies treat exit 75 as retry-later, and the Dockerfile (unbuilt here: no
Docker daemon) installs the project as the README says and runs the console script.

Validators: the Kubernetes manifest against the OpenAPI schemas bundled by ``kubernetes-validate``
in strict mode (an unknown or misspelt field fails); the AWS Batch files against botocore's own
``batch`` service model (the input shapes of RegisterJobDefinition and SubmitJob), plus the
limits that model documents but does not enforce.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.main import get_command

from indexer.cli import app
from indexer.config import SETTINGS, env_var

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
K8S = DEPLOY / "kubernetes" / "indexed-job.yaml"
JOB_DEFINITION = DEPLOY / "aws-batch" / "job-definition.json"
SUBMIT = DEPLOY / "aws-batch" / "submit-array-job.json"
DOCKERFILE = DEPLOY / "Dockerfile"
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: The oldest Kubernetes the manifest is written for (backoffLimitPerIndex is GA from 1.33) and the newest schema.
K8S_VERSIONS = ("1.33", "latest")


# ------------------------------------------------------------------ loading


def _k8s_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(K8S.read_text()) if doc]


def _k8s_job() -> dict[str, Any]:
    (job,) = [doc for doc in _k8s_documents() if doc["kind"] == "Job"]
    return job


def _k8s_container() -> dict[str, Any]:
    (container,) = _k8s_job()["spec"]["template"]["spec"]["containers"]
    return container


def _job_definition() -> dict[str, Any]:
    return json.loads(JOB_DEFINITION.read_text())


def _submit() -> dict[str, Any]:
    return json.loads(SUBMIT.read_text())


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            rows.append((instruction.upper(), rest.strip()))
    return rows


def _docker(instruction: str) -> list[str]:
    return [rest for name, rest in _dockerfile() if name == instruction]


def _env_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["name"]: item for item in items}


# ------------------------------------------------------------------ Kubernetes


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifest_is_valid_against_the_strict_schema(version):
    desired = kubernetes_validate.latest_version() if version == "latest" else version
    documents = _k8s_documents()
    assert {doc["kind"] for doc in documents} == {"Job", "ServiceAccount"}
    for doc in documents:
        kubernetes_validate.validate(doc, desired, strict=True)


def test_the_strict_kubernetes_schema_rejects_a_misspelt_field():
    """The validator above is not a rubber stamp: one typo in the same manifest fails it."""
    job = _k8s_job()
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "2"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_job_runs_one_pod_per_shard_and_retries_75_later():
    spec = _k8s_job()["spec"]
    args = _k8s_container()["args"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == _shards(args, {}) >= 2
    assert _flag(args, "--shard") == "auto"  # the index comes from JOB_COMPLETION_INDEX
    assert spec["backoffLimitPerIndex"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it

    actions = {
        code: rule["action"]
        for rule in spec["podFailurePolicy"]["rules"]
        if "onExitCodes" in rule
        for code in rule["onExitCodes"]["values"]
    }
    assert actions[2] == "FailJob"  # a usage error fails every shard alike
    assert actions.get(75, "Count") in ("Count", "Ignore")  # lease held elsewhere: retry later, never fatal
    assert actions.get(1, "Count") in ("Count", "Ignore")
    for rule in spec["podFailurePolicy"]["rules"]:
        if "onExitCodes" in rule:
            assert rule["onExitCodes"]["containerName"] == _k8s_container()["name"]


def test_kubernetes_pod_gets_its_secret_credentials_cpu_and_time_to_stop():
    pod = _k8s_job()["spec"]["template"]["spec"]
    container = _k8s_container()
    env = _env_list(container["env"])
    assert env["INDEXER_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "indexer-db", "key": "url"}
    assert "--db" not in container["args"]  # the URL (and its password) stays out of the command line
    # Kubernetes gives a pod its Job's name only as a label: the job id `indexer runs --job` groups by.
    job_label = "metadata.labels['batch.kubernetes.io/job-name']"
    assert env["INDEXER_JOB_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == job_label

    (account,) = [doc for doc in _k8s_documents() if doc["kind"] == "ServiceAccount"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")

    resources = container["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"] == env["INDEXER_WORKERS"]["value"]
    # The offline engine's pod peaked at 0.8 GiB (2 workers, 24-megapixel photos): docs/deploy/README.md.
    assert _gibibytes(resources["requests"]["memory"]) >= 1
    assert _gibibytes(resources["limits"]["memory"]) >= 2
    # SIGTERM: in-flight calls get 30 s to finish (README), then the commit and the summary.
    assert pod["terminationGracePeriodSeconds"] > 30
    assert str(pod["securityContext"]["runAsUser"]) == _docker("USER")[-1]


def _gibibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity)
    assert match, f"memory {quantity!r}: write it in Mi or Gi"
    number, unit = match.groups()
    return float(number) / (1024 if unit == "Mi" else 1)


# ------------------------------------------------------------------ AWS Batch


def _batch_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("batch")


@pytest.mark.parametrize(
    ("path", "operation"), [(JOB_DEFINITION, "RegisterJobDefinition"), (SUBMIT, "SubmitJob")]
)
def test_batch_files_are_valid_input_for_their_api_call(path, operation):
    from botocore.validate import validate_parameters

    validate_parameters(json.loads(path.read_text()), _batch_model().operation_model(operation).input_shape)


def test_botocore_validation_rejects_a_wrong_type_in_the_job_definition():
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    definition = _job_definition()
    definition["retryStrategy"]["attempts"] = "5"
    with pytest.raises(ParamValidationError):
        validate_parameters(definition, _batch_model().operation_model("RegisterJobDefinition").input_shape)


def _batch_action(retry: dict[str, Any], exit_code: int, status_reason: str = "Essential container in task exited") -> str:
    """What AWS Batch does with a failed attempt: the first evaluateOnExit entry whose conditions all
    match (patterns may end in *), else RETRY (the documented default)."""

    def matches(pattern: str | None, value: str) -> bool:
        if pattern is None:
            return True
        return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern

    for entry in retry.get("evaluateOnExit", []):
        if matches(entry.get("onExitCode"), str(exit_code)) and matches(entry.get("onStatusReason"), status_reason):
            return entry["action"]
    return "RETRY"


def test_batch_retry_strategy_retries_75_and_stops_on_usage_errors():
    retry = _job_definition()["retryStrategy"]
    # Limits in the model's documentation that its validator does not enforce.
    assert 1 <= retry["attempts"] <= 10
    assert len(retry["evaluateOnExit"]) <= 5
    for entry in retry["evaluateOnExit"]:
        assert entry["action"] in ("RETRY", "EXIT")
        assert re.fullmatch(r"\d+\*?|\*", entry.get("onExitCode", "*"))
    assert _batch_action(retry, 75) == "RETRY"
    assert _batch_action(retry, 2) == "EXIT"
    assert _batch_action(retry, 1) == "RETRY"
    assert _batch_action(retry, 143, "Host EC2 (instance i-0abc) terminated.") == "RETRY"


def test_batch_array_size_is_the_shard_count_and_the_secret_is_not_in_the_environment():
    definition, submit = _job_definition(), _submit()
    container = definition["containerProperties"]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    environment.update({e["name"]: e["value"] for e in submit["containerOverrides"]["environment"]})
    command = container["command"]

    assert _flag(command, "--shard") == "auto"  # the index comes from AWS_BATCH_JOB_ARRAY_INDEX
    assert 2 <= submit["arrayProperties"]["size"] <= 10_000
    assert submit["arrayProperties"]["size"] == _shards(command, environment)
    assert submit["jobDefinition"] == definition["jobDefinitionName"]
    assert not any("Ref::" in word for word in command)

    assert "INDEXER_DB_URL" not in environment and "--db" not in command
    (secret,) = [s for s in container["secrets"] if s["name"] == "INDEXER_DB_URL"]
    assert secret["valueFrom"].startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:"))
    assert container["executionRoleArn"]  # ECS fetches the secret with this role

    resources = {r["type"]: r["value"] for r in container["resourceRequirements"]}
    assert resources["VCPU"] == environment["INDEXER_WORKERS"]
    assert int(resources["MEMORY"]) >= 2048
    assert definition["timeout"]["attemptDurationSeconds"] >= 60  # Batch's minimum


# ------------------------------------------------------------------ commands and variables


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _shards(args: list[str], environment: dict[str, str]) -> int:
    """N as the indexer takes it for --shard auto: --shards, else INDEXER_SHARDS."""
    value = _flag(args, "--shards") or environment.get("INDEXER_SHARDS")
    assert value is not None, "no shard count: --shards N or INDEXER_SHARDS"
    return int(value)


def _commands() -> dict[str, list[str]]:
    return {
        "kubernetes": _k8s_container()["args"],
        "aws-batch": _job_definition()["containerProperties"]["command"],
    }


@pytest.mark.parametrize("where", ["kubernetes", "aws-batch"])
def test_every_manifest_command_parses_with_the_real_cli(where):
    """The entrypoint is `indexer`, so the manifest's words are its arguments: click's own parser
    (the one `indexer` runs) must accept them, every flag and value."""
    args = _commands()[where]
    command = _subcommands(get_command(app))[args[0]]
    context = command.make_context(args[0], list(args[1:]))
    by_flag = {opt: context.params[param.name] for param in command.params for opt in param.opts}
    assert by_flag["source"] == args[1]
    assert by_flag["--quiet"] is True  # one summary line per shard in the logs
    assert by_flag["--shard"] == "auto"
    assert by_flag["--shards"] == (int(args[args.index("--shards") + 1]) if "--shards" in args else None)
    with pytest.raises(Exception, match="--shards-count"):  # the parser does reject what it does not know
        command.make_context(args[0], [*args[1:], "--shards-count", "4"])


def _subcommands(group: Any) -> dict[str, Any]:
    """A command group's commands (typer ships its own click, so no isinstance on click's classes)."""
    return dict(group.commands)


def _variables_set() -> dict[str, set[str]]:
    k8s_env = {e["name"] for e in _k8s_container()["env"]}
    container = _job_definition()["containerProperties"]
    batch_env = {e["name"] for e in container["environment"] + container["secrets"]}
    batch_env |= {e["name"] for e in _submit()["containerOverrides"]["environment"]}
    docker_env = {word.split("=")[0] for rest in _docker("ENV") for word in shlex.split(rest)}
    return {"kubernetes": k8s_env, "aws-batch": batch_env, "Dockerfile": docker_env}


def _read_by_indexer(name: str) -> bool:
    if name in {env_var(setting.name) for setting in SETTINGS}:
        return True
    return any(f'"{name}"' in path.read_text() for path in (ROOT / "indexer").rglob("*.py"))


def _read_by_botocore(name: str) -> bool:
    import botocore

    return f"'{name}'" in (Path(botocore.__file__).parent / "configprovider.py").read_text()


@pytest.mark.parametrize("where", ["kubernetes", "aws-batch", "Dockerfile"])
def test_every_variable_set_is_one_something_reads(where):
    pip_and_python = {"PIP_NO_CACHE_DIR", "PYTHONUNBUFFERED"}
    for name in _variables_set()[where]:
        assert (
            _read_by_indexer(name)
            or (name.startswith("AWS_") and _read_by_botocore(name))
            or (where == "Dockerfile" and name in pip_and_python)
        ), f"{where} sets {name}, which nothing reads"


# ------------------------------------------------------------------ Dockerfile


def test_dockerfile_installs_as_the_readme_says_and_runs_the_console_script():
    (install,) = [rest for rest in _docker("RUN") if "pip install" in rest]
    pip_command = install.split("&&")[0].strip()
    assert pip_command in README  # the README's install of the project with PostgreSQL support
    main_command = re.search(r"<!-- main-command -->\n```bash\n(.+)\n```", README)
    assert main_command and "pip install -q . " in main_command.group(1)  # the same project, from its root
    extras = re.findall(r"\.\[([\w,]+)\]", pip_command)
    assert extras and set(extras[0].split(",")) <= set(PYPROJECT["project"]["optional-dependencies"])
    assert "postgres" in extras[0]

    assert json.loads(_docker("ENTRYPOINT")[-1]) == ["indexer"]
    assert "indexer" in PYPROJECT["project"]["scripts"]
    assert _docker("FROM")[0].startswith("python:3.11")
    assert _docker("USER")[-1] not in ("root", "0")


def test_dockerfile_installs_the_models_into_the_directory_the_engine_reads():
    runs = _docker("RUN")
    env = {k: v for rest in _docker("ENV") for k, _, v in (w.partition("=") for w in shlex.split(rest))}
    assert _read_by_indexer("INDEXER_MODELS_DIR") and env["INDEXER_MODELS_DIR"].startswith("/")
    models = [i for i, rest in enumerate(runs) if "indexer models install" in rest]
    installs = [i for i, rest in enumerate(runs) if "pip install" in rest]
    assert models and installs and installs[0] < models[0]  # the CLI exists before it is run
    assert "install" in _subcommands(_subcommands(get_command(app))["models"])


@pytest.mark.slow
def test_what_the_dockerfile_copies_builds_the_package(tmp_path):
    """The build context the Dockerfile COPYs (no more) builds a wheel holding the CLI and the
    migrations: the step `pip install` runs in the image, without Docker."""
    context = tmp_path / "src"
    context.mkdir()
    for rest in _docker("COPY"):
        *sources, destination = rest.split()
        assert destination == "./" or sources == [destination.removeprefix("./")], rest  # mirrored below
        for source in sources:
            origin = ROOT / source
            target = context / source
            if origin.is_dir():
                subprocess.run(["cp", "-r", str(origin), str(target)], check=True)
            else:
                target.write_bytes(origin.read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "out"), str(context)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "out").glob("indexer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "indexer/cli.py" in names and "indexer/migrations/env.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "indexer = indexer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
