"""The GKE deployment files: Dockerfile, deploy/*.yaml, and the Kubernetes Jobs dagster-k8s builds from them.

No Docker engine, Helm or cluster here: the Dockerfile is parsed, the values are checked against the chart's
documented keys, and the run Job is built by dagster-k8s's own K8sRunLauncher with the Kubernetes API replaced
by a recorder (the launcher's own `k8s_client_batch_api` injection point).
"""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, Definitions, define_asset_job
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

from metadata_assets import config as config_mod
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import EXTRACTION_POD, k8s_tags, mce_asset_key, partitions_def, run_tags
from metadata_assets.defs.pools import SENSOR_NAME
from metadata_assets.defs.source_setup import SourceSetup

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
RELEASE, NAMESPACE = "dagster", "metadata-assets"  # what the README's helm commands use


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


VALUES = yaml.safe_load((DEPLOY / "values.yaml").read_text())
PROXY = yaml.safe_load((DEPLOY / "oauth2-proxy-values.yaml").read_text())
USER_DEPLOYMENT = VALUES["dagster-user-deployments"]["deployments"][0]
SECRETS = {d["metadata"]["name"]: d for d in load_docs(DEPLOY / "secrets.example.yaml") if d["kind"] == "Secret"}
(CONFIGMAP,) = [d for d in load_docs(DEPLOY / "sources-configmap.yaml") if d["kind"] == "ConfigMap"]
NETWORK = {d["kind"]: d for d in load_docs(DEPLOY / "network.yaml")}
(CODE_SERVER_POLICY,) = load_docs(DEPLOY / "code-server-network.yaml")


# --------------------------------------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instrs = dockerfile()
    last_from = max(i for i, (k, _) in enumerate(instrs) if k == "FROM")
    return instrs[last_from:]


def resolve_args(ref: str) -> str:
    args = dict(a.split("=", 1) for k, a in dockerfile() if k == "ARG" and "=" in a)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)


def served_module_of_workspace() -> str:
    ws = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (entry,) = ws["load_from"]
    return entry["python_module"]["module_name"]


def test_image_is_slim_multi_stage_non_root_without_entrypoint():
    instrs = dockerfile()
    bases = [resolve_args(a.split()[0]) for k, a in instrs if k == "FROM"]
    assert len(bases) == 2, bases  # build stage + runtime stage
    # by digest (issue 29): a tag can be moved to another image, a digest cannot
    assert all(re.fullmatch(r"python:3\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", b) for b in bases), bases
    # the runtime stage takes only the virtualenv from the build stage
    copies_from_build = [a for k, a in final_stage() if k == "COPY" and a.startswith("--from=")]
    assert copies_from_build == ["--from=build /opt/venv /opt/venv"]
    assert not [k for k, _ in instrs if k == "ENTRYPOINT"], "the chart passes `dagster api grpc ...` as args"
    users = [a for k, a in final_stage() if k == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid, so runAsNonRoot can verify it"
    assert str(VALUES["dagster-user-deployments"]["deployments"][0]["podSecurityContext"]["runAsUser"]) == uid
    # every file the build copies exists in the repository
    for k, a in instrs:
        if k == "COPY" and not a.startswith("--from="):
            for src in a.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


def test_image_installs_exactly_the_lock():
    runs = [a for k, a in dockerfile() if k == "RUN"]
    # every file checked against the lock's hashes (issue 29)
    assert any(re.search(r"pip install --no-deps --require-hashes -r requirements\.lock\b", r) for r in runs), runs
    assert any(re.search(r"pip install --no-deps \.(\s|$)", r) for r in runs), "project installed without resolving"
    copies = [a for k, a in dockerfile() if k == "COPY"]
    assert any(a.split()[0] == "requirements.lock" for a in copies)


def test_lock_pins_what_the_run_pods_need():
    """Run pods load the chart's dagster.yaml: Postgres storage (dagster_postgres) and K8sRunLauncher (dagster_k8s)
    must be importable in this image, at the versions that match dagster."""
    lock = {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    }
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = dict(d.split("==") for d in deps)
    assert lock["dagster"] == pinned["dagster"]
    assert lock["dagster-k8s"] == pinned["dagster-k8s"]
    assert "dagster-postgres" in lock, "requirements.lock lacks dagster-postgres: run pods cannot load the instance"
    assert lock["dagster-postgres"] == lock["dagster-k8s"]


def test_served_module_is_the_same_everywhere():
    module = served_module_of_workspace()
    assert module == tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert USER_DEPLOYMENT["dagsterApiGrpcArgs"] == ["-m", module]
    (cmd,) = [json.loads(a) for k, a in dockerfile() if k == "CMD"]
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[cmd.index("-m") + 1] == module
    assert cmd[cmd.index("-p") + 1] == str(USER_DEPLOYMENT["port"])


# --------------------------------------------------------------------------------------------- Helm values


def test_values_run_on_k8s_with_cloud_sql_and_a_run_queue():
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["dagster-user-deployments"]["enabled"] is True
    assert USER_DEPLOYMENT["includeConfigInLaunchedRuns"]["enabled"] is True
    pg = VALUES["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"]
    assert "postgresqlPassword" not in pg
    assert VALUES["generatePostgresqlPasswordSecret"] is False
    assert VALUES["global"]["postgresqlSecretName"] in SECRETS
    assert "postgresql-password" in SECRETS[VALUES["global"]["postgresqlSecretName"]]["stringData"]
    assert USER_DEPLOYMENT["resources"]["requests"]["memory"]  # code server and untagged run pods
    assert VALUES["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert VALUES["concurrency"]["enabled"] is True
    assert VALUES["concurrency"]["pools"]["granularity"] == "run"  # a full MySQL pool keeps runs queued, no pod
    assert VALUES["concurrency"]["pools"]["defaultLimit"] >= 1


def test_sources_come_from_the_configmap_mounted_where_the_env_points():
    env = {e["name"]: e.get("value") for e in USER_DEPLOYMENT["env"]}
    (volume,) = [v for v in USER_DEPLOYMENT["volumes"] if v.get("configMap")]
    assert volume["configMap"]["name"] == CONFIGMAP["metadata"]["name"]
    (mount,) = [m for m in USER_DEPLOYMENT["volumeMounts"] if m["name"] == volume["name"]]
    (key,) = CONFIGMAP["data"]
    assert env[config_mod.CONFIG_ENV] == f"{mount['mountPath']}/{key}"


def test_configmap_config_is_valid_and_its_secrets_exist(tmp_path, monkeypatch):
    ((_, text),) = CONFIGMAP["data"].items()
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    env = {e["name"]: e.get("value") for e in USER_DEPLOYMENT["env"]}
    secret_keys = {
        k: name for name in (s["name"] for s in USER_DEPLOYMENT["envSecrets"]) for k in SECRETS[name]["stringData"]
    }
    code_server_env(monkeypatch)
    cfg = config_mod.load(path)
    assert cfg.sources and cfg.storage.uri.startswith("gs://")
    assert cfg.datahub.target == "rest"
    for source in cfg.sources:
        assert source.password_env in secret_keys, f"{source.name}: {source.password_env} is in no Secret"
    assert cfg.datahub.rest.token_env in secret_keys
    assert env[cfg.datahub.rest.server_env].startswith("http")
    for key in secret_keys:  # every secret variable provided is used by the config
        monkeypatch.setenv(key, "x")
    config_mod.check_secrets(cfg)


def secret_references() -> list[str]:
    refs = [VALUES["global"]["postgresqlSecretName"], PROXY["config"]["existingSecret"]]

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "envSecrets":
                    refs.extend(s["name"] for s in v)
                elif k == "secretName" or k == "secretRef":
                    refs.append(v if isinstance(v, str) else v["name"])
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(VALUES)
    walk(PROXY)
    return refs


def test_every_secret_reference_names_an_example_secret_and_nothing_secret_is_inline():
    refs = secret_references()
    assert {
        "metadata-assets-mysql",
        "metadata-assets-datahub",
        "dagster-postgresql-secret",
        "dagster-oauth2-proxy",
    } <= set(refs)
    for ref in refs:
        assert ref in SECRETS, f"Secret {ref!r} is referenced but not in deploy/secrets.example.yaml"
    allowed = {"postgresqlSecretName", "existingSecret", "secretName", "envSecrets", "generatePostgresqlPasswordSecret"}

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if re.search(r"password|secret|token|credential|cookie|key$", k, re.I) and k not in allowed:
                    assert not isinstance(v, str) or not v or v.startswith("<"), f"{where}.{k} looks inline"
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(VALUES, "values")
    walk(PROXY, "oauth2-proxy")
    # the ConfigMap's config may only name variables, never hold a password
    assert not re.search(r"^\s*password\s*:", CONFIGMAP["data"]["sources.yaml"], re.M)
    # example Secrets hold placeholders only
    for secret in SECRETS.values():
        assert all(v.startswith("<") for v in secret["stringData"].values()), secret["metadata"]["name"]


def test_webserver_is_reachable_only_through_the_oidc_proxy():
    web = VALUES["dagsterWebserver"]
    assert web["service"]["type"] == "ClusterIP"
    assert VALUES["ingress"]["enabled"] is False
    service = f"{RELEASE}-{web['nameOverride']}"
    assert PROXY["extraArgs"]["upstream"] == (
        f"http://{service}.{NAMESPACE}.svc.cluster.local:{web['service']['port']}"
    )
    assert PROXY["extraArgs"]["provider"] == "oidc" and PROXY["extraArgs"]["oidc-issuer-url"].startswith("https://")
    assert PROXY["extraArgs"]["allowed-group"]
    assert PROXY["service"]["type"] == "ClusterIP" and PROXY["ingress"]["enabled"] is True
    assert set(SECRETS[PROXY["config"]["existingSecret"]]["stringData"]) == {
        "client-id",
        "client-secret",
        "cookie-secret",
    }
    host = PROXY["ingress"]["hosts"][0]
    assert PROXY["extraArgs"]["redirect-url"] == f"https://{host}/oauth2/callback"
    cert = NETWORK["ManagedCertificate"]
    assert PROXY["ingress"]["annotations"]["networking.gke.io/managed-certificates"] == cert["metadata"]["name"]
    assert cert["spec"]["domains"] == [host]
    policy = NETWORK["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": RELEASE,
        "component": "dagster-webserver",
    }
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "oauth2-proxy"}}}]
    assert [p["port"] for p in rule["ports"]] == [web["service"]["port"]]


def test_readme_deploy_section_names_every_deploy_file():
    readme = ROOT / "README.md"
    text = readme.read_text()
    section = text.split("## Deploy on GKE", 1)[1].split("\n## ", 1)[0]
    for f in sorted(DEPLOY.iterdir()):
        assert f"deploy/{f.name}" in section, f"README's Deploy on GKE section does not mention deploy/{f.name}"
    assert "Dockerfile" in section and SENSOR_NAME in section
    for name in SECRETS:
        assert name in section, f"README does not tell how to create Secret {name}"


# --------------------------------------------------------------------------------------------- Kubernetes Jobs


class RecordingBatchApi:
    """Stands in for the Kubernetes API server: records the Job the launcher submits."""

    def __init__(self):
        self.jobs = []

    def create_namespaced_job(self, body, namespace, **_):
        self.jobs.append((namespace, body))


def chart_container_context(deployment: dict) -> dict:
    """What the chart's dagsterUserDeployments.k8sContainerContext template gives the code server (and so every run
    it launches, with includeConfigInLaunchedRuns)."""
    sa = VALUES["dagster-user-deployments"]["serviceAccount"]["name"]
    k8s = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"{RELEASE}-{deployment['name']}-user-env"],
        "env_secrets": [s["name"] for s in deployment.get("envSecrets", [])],
        "volume_mounts": deployment.get("volumeMounts", []),
        "volumes": deployment.get("volumes", []),
        "resources": deployment.get("resources", {}),
        "namespace": NAMESPACE,
        "service_account_name": sa,
        "env": deployment.get("env", []),
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    return {"k8s": k8s}


def chart_run_launcher(batch_api, kubeconfig: Path) -> K8sRunLauncher:
    """The K8sRunLauncher as the chart's dagster.yaml configures it from values.yaml (out of cluster here)."""
    cfg = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    run_cfg = cfg.get("runK8sConfig", {})
    snake = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    return K8sRunLauncher(
        service_account_name=VALUES["serviceAccount"]["name"],
        instance_config_map=f"{RELEASE}-instance",
        postgres_password_secret=VALUES["global"]["postgresqlSecretName"],
        dagster_home="/opt/dagster/dagster_home",
        job_namespace=NAMESPACE,
        load_incluster_config=False,
        kubeconfig_file=str(kubeconfig),
        image_pull_policy=cfg["imagePullPolicy"],
        env_config_maps=[f"{RELEASE}-pipeline-env"],
        fail_pod_on_run_failure=cfg.get("failPodOnRunFailure"),
        run_k8s_config={snake[k]: v for k, v in run_cfg.items()},
        k8s_client_batch_api=batch_api,
    )


@pytest.fixture
def kubeconfig(tmp_path):
    """Only parsed by the kubernetes client; no cluster is ever contacted (the batch API is the recorder)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "none",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
            }
        )
    )
    return path


def code_server_env(monkeypatch) -> None:
    """The code server's environment: its env values and its Secrets' keys (placeholder values). A REST target's
    variables are checked when the config loads (issue 29)."""
    for e in USER_DEPLOYMENT["env"]:
        if e.get("value") is not None:
            monkeypatch.setenv(e["name"], e["value"])
    for name in (s["name"] for s in USER_DEPLOYMENT["envSecrets"]):
        for key in SECRETS[name]["stringData"]:
            monkeypatch.setenv(key, "x")


@pytest.fixture
def deployed_config(tmp_path, monkeypatch):
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIGMAP["data"]["sources.yaml"])
    code_server_env(monkeypatch)
    return config_mod.load(path)


def make_run(tmp_path, job_def, tags, partitions=None):
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = DagsterInstance.local_temp(str(home))
    if partitions:
        instance.add_dynamic_partitions(*partitions)
    image = f"{USER_DEPLOYMENT['image']['repository']}:{USER_DEPLOYMENT['image']['tag']}"
    origin = JobPythonOrigin(
        job_def.name,
        RepositoryPythonOrigin(
            executable_path="/opt/venv/bin/python",
            code_pointer=ModuleCodePointer(served_module_of_workspace(), "defs", working_directory=None),
            container_image=image,
            container_context=chart_container_context(USER_DEPLOYMENT),
        ),
    )
    return instance, instance.create_run_for_job(job_def, tags=tags, job_code_origin=origin), image


def launch(tmp_path, kubeconfig, job_def, tags, partitions=None) -> tuple[str, object]:
    instance, run, image = make_run(tmp_path, job_def, tags, partitions)
    api = RecordingBatchApi()
    launcher = chart_run_launcher(api, kubeconfig)
    launcher.register_instance(instance)
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    ((namespace, job),) = api.jobs
    assert namespace == NAMESPACE
    return image, job


def container_env(container) -> dict:
    return {e.name: e for e in container.env or []}


def check_common(job, image, command="execute_run"):
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.image == image
    assert container.args[:5] == ["/opt/venv/bin/python", "-m", "dagster", "api", command]
    secrets = {ref.secret_ref.name for ref in container.env_from if ref.secret_ref}
    assert {s["name"] for s in USER_DEPLOYMENT["envSecrets"]} <= secrets
    env = container_env(container)
    assert env[config_mod.CONFIG_ENV].value == "/etc/metadata-assets/sources.yaml"
    pg = env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
    assert (pg.name, pg.key) == (VALUES["global"]["postgresqlSecretName"], "postgresql-password")
    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    assert mounts["sources-config"] == "/etc/metadata-assets"
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["sources-config"].config_map.name == CONFIGMAP["metadata"]["name"]
    assert pod.service_account_name == VALUES["dagster-user-deployments"]["serviceAccount"]["name"]
    assert pod.security_context.run_as_non_root is True and pod.security_context.run_as_user == 10001
    assert job.spec.ttl_seconds_after_finished == 86400
    return container


def test_extraction_run_job_carries_image_secrets_config_and_run_tag_resources(tmp_path, kubeconfig, deployed_config):
    source = deployed_config.sources[0]
    asset = build_mce_asset(SourceSetup.of(deployed_config, source))
    job_def = Definitions(
        assets=[asset], jobs=[define_asset_job("extract", selection=[mce_asset_key(source)])]
    ).resolve_job_def("extract")
    tags = {
        **run_tags(source),
        "dagster/asset_partition_range_start": "db_a",
        "dagster/asset_partition_range_end": "db_b",
    }
    image, job = launch(tmp_path, kubeconfig, job_def, tags, partitions=(partitions_def(source).name, ["db_a", "db_b"]))
    container = check_common(job, image)
    assert container.resources.requests == {"cpu": EXTRACTION_POD["cpu"], "memory": EXTRACTION_POD["memory"]}
    assert container.resources.limits == {"memory": EXTRACTION_POD["memory"]}


def test_run_without_tags_gets_the_default_run_pod_size(tmp_path, kubeconfig, deployed_config):
    """A run launched from the UI (no run tags): the user deployment's resources, passed on by
    includeConfigInLaunchedRuns, size the pod."""
    source = deployed_config.sources[0]
    job_def = Definitions(
        assets=[build_mce_asset(SourceSetup.of(deployed_config, source))],
        jobs=[define_asset_job("extract", selection=[mce_asset_key(source)])],
    ).resolve_job_def("extract")
    image, job = launch(tmp_path, kubeconfig, job_def, {})
    container = check_common(job, image)
    default = USER_DEPLOYMENT["resources"]
    assert container.resources.requests == default["requests"]
    assert container.resources.limits == default["limits"]


def test_push_asset_run_job(tmp_path, kubeconfig, deployed_config):
    push = pytest.importorskip("metadata_assets.defs.push")
    source = deployed_config.sources[0]
    asset = push.build_push_asset(SourceSetup.of(deployed_config, source))
    key = AssetKey([source.name, "datahub_push"])
    job_def = Definitions(assets=[asset], jobs=[define_asset_job("push", selection=[key])]).resolve_job_def("push")
    image, job = launch(tmp_path, kubeconfig, job_def, {push.SOURCE_TAG: source.name})
    container = check_common(job, image)
    assert container.resources.requests == USER_DEPLOYMENT["resources"]["requests"]
    assert container.resources.limits == USER_DEPLOYMENT["resources"]["limits"]


def test_extraction_op_tags_size_a_per_step_pod(tmp_path, kubeconfig, deployed_config):
    """Under dagster-k8s's k8s_job_executor (one pod per step) the asset's op_tags size the step pod: the same
    container-context merge as dagster_k8s.executor's step handler, then its Job construction."""
    source = deployed_config.sources[0]
    asset = build_mce_asset(SourceSetup.of(deployed_config, source))
    job_def = Definitions(
        assets=[asset], jobs=[define_asset_job("extract", selection=[mce_asset_key(source)])]
    ).resolve_job_def("extract")
    instance, run, image = make_run(tmp_path, job_def, {})
    launcher = chart_run_launcher(RecordingBatchApi(), kubeconfig)
    launcher.register_instance(instance)
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(asset.op.tags))
    )
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(None, launcher).with_image(image),
        args=["/opt/venv/bin/python", "-m", "dagster", "api", "execute_step"],
        job_name="step-job",
        pod_name="step-pod",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )
    container = check_common(job, image, command="execute_step")
    expected = k8s_tags(**EXTRACTION_POD)["dagster-k8s/config"]["container_config"]["resources"]
    assert container.resources.requests == expected["requests"] and container.resources.limits == expected["limits"]


def test_image_ships_bytecode():
    """Run pods must not recompile dagster and acryl-datahub at every start (PYTHONDONTWRITEBYTECODE is set)."""
    text = (Path(__file__).parents[1] / "Dockerfile").read_text()
    build, final = text.split("\nFROM ${PYTHON_IMAGE}\n")
    assert "python -m compileall" in build
    assert build.index("rm -rf {}") < build.index("python -m compileall")  # compiled after the cleanup
    assert "PYTHONDONTWRITEBYTECODE=1" in final


def test_failed_extraction_runs_are_retried_by_the_daemon(monkeypatch):
    """Sensor/schedule extraction runs ask for run retries, and the deployed instance honours that tag."""
    from metadata_assets.defs.keys import MAX_RETRIES_TAG, run_tags
    from metadata_assets.sources.mysql.config import MySQLSource

    monkeypatch.setenv("PW", "x")
    src = MySQLSource(name="s", type="mysql", host="h", user="u", password_env="PW")
    assert int(run_tags(src)[MAX_RETRIES_TAG]) >= 1
    assert VALUES["dagsterDaemon"]["runRetries"]["enabled"] is True


# --------------------------------------------------------------------------------------------- code server network

# The pod labels Dagster's chart (1.13) gives: selector labels (app.kubernetes.io/name, app.kubernetes.io/instance:
# the release) plus `component` (and `deployment` for a user deployment's pods)
CHART_PODS = {
    "code server": {
        "app.kubernetes.io/name": "dagster-user-deployments",
        "app.kubernetes.io/instance": RELEASE,
        "component": "user-deployments",
        "deployment": USER_DEPLOYMENT["name"],
    },
    "webserver": {
        "app.kubernetes.io/name": "dagster",
        "app.kubernetes.io/instance": RELEASE,
        "component": "dagster-webserver",
    },
    "daemon": {
        "app.kubernetes.io/name": "dagster",
        "app.kubernetes.io/instance": RELEASE,
        "component": "dagster-daemon",
    },
    "another pod of the namespace": {"app.kubernetes.io/name": "oauth2-proxy", "app.kubernetes.io/instance": "proxy"},
    "a step pod (k8s_job_executor)": {
        "app.kubernetes.io/name": "dagster",
        "app.kubernetes.io/instance": "dagster",
        "app.kubernetes.io/part-of": "dagster",
        "app.kubernetes.io/component": "step_worker",
    },
}


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) == {"matchLabels"}, selector  # only matchLabels here: no expressions to evaluate
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def admitted(policy: dict, labels: dict, port: int) -> bool:
    """Whether an ingress rule of the policy lets a pod with these labels (same namespace) reach `port`."""
    return any(
        any(
            "podSelector" in peer and set(peer) == {"podSelector"} and selects(peer["podSelector"], labels)
            for peer in rule["from"]
        )
        and any(p["port"] == port for p in rule["ports"])
        for rule in policy["spec"]["ingress"]
    )


def test_code_server_grpc_port_only_from_webserver_daemon_and_run_pods(tmp_path, kubeconfig, deployed_config):
    policy = CODE_SERVER_POLICY
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    port = USER_DEPLOYMENT["port"]
    assert selects(policy["spec"]["podSelector"], CHART_PODS["code server"])
    assert not selects(policy["spec"]["podSelector"], CHART_PODS["webserver"])
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [port]
    for who in ("webserver", "daemon"):
        assert admitted(policy, CHART_PODS[who], port), who
    for who in ("another pod of the namespace", "a step pod (k8s_job_executor)", "code server"):
        assert not admitted(policy, CHART_PODS[who], port), who
    assert not admitted(policy, CHART_PODS["webserver"], 8080)
    # a run pod: the labels of the Job the chart's K8sRunLauncher really builds
    source = deployed_config.sources[0]
    job_def = Definitions(
        assets=[build_mce_asset(SourceSetup.of(deployed_config, source))],
        jobs=[define_asset_job("extract", selection=[mce_asset_key(source)])],
    ).resolve_job_def("extract")
    _, job = launch(tmp_path, kubeconfig, job_def, {})
    run_pod = job.spec.template.metadata.labels
    assert admitted(policy, run_pod, port), run_pod
    assert not admitted(policy, {**run_pod, "app.kubernetes.io/component": "step_worker"}, port)


# --------------------------------------------------------------------------------------------- supply chain


def lock_entries(path: Path) -> dict[str, list[str]]:
    """{name==version: [sha256 hashes]} of a uv-compiled, hashed lock."""
    entries, current = {}, None
    for line in path.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            current = line.split(" ", 1)[0]
            entries[current] = []
        elif line.strip().startswith("--hash=sha256:") and current:
            entries[current].append(line.strip().split("sha256:", 1)[1].rstrip(" \\"))
    return entries


def test_locks_pin_every_package_with_hashes_and_setup_requires_them():
    runtime, dev, uv = (
        lock_entries(ROOT / f) for f in ("requirements.lock", "requirements-dev.lock", "requirements-uv.lock")
    )
    for name, lock in (("requirements.lock", runtime), ("requirements-dev.lock", dev), ("requirements-uv.lock", uv)):
        assert lock and all("==" in req for req in lock), name
        unhashed = [req for req, hashes in lock.items() if not hashes]
        assert not unhashed, f"{name}: no hash for {unhashed}"
        assert all(len(h) == 64 for hashes in lock.values() for h in hashes), name
    assert set(runtime) <= set(dev)  # the image runs what the tests ran
    assert {r.split("==")[0] for r in uv} == {"uv"}
    # the Dockerfile installs with --require-hashes: test_image_installs_exactly_the_lock
    dev_sh = (ROOT / "dev.sh").read_text()
    assert "pip install -q --disable-pip-version-check --require-hashes -r requirements-uv.lock" in dev_sh
    assert 'uv" pip sync -q --require-hashes --python "$VENV/bin/python" requirements-dev.lock' in dev_sh
    assert "--no-deps -e ." in dev_sh


def test_tls_files_of_the_deployed_sources_are_mounted_from_a_secret(deployed_config):
    """Every certificate file the deployed config names is a key of a Secret mounted where the path points, in the
    code server and (includeConfigInLaunchedRuns) every run pod."""
    volumes = {v["name"]: v for v in USER_DEPLOYMENT["volumes"]}
    paths = []
    for s in deployed_config.sources:
        tls = getattr(s, "tls", None)
        paths += [
            p
            for p in (
                getattr(tls, "ca", None),
                getattr(tls, "cert", None),
                getattr(tls, "key", None),
                getattr(s, "sslrootcert", None),
                getattr(s, "sslcert", None),
                getattr(s, "sslkey", None),
            )
            if p and p != "system"
        ]
        if s.type == "mysql":
            assert s.tls.effective_mode == "required" and s.tls.ca and s.tls.checks_host_name, s.name
    assert paths, "the deployed example checks the servers' certificates"
    for path in paths:
        mounts = [m for m in USER_DEPLOYMENT["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
        assert len(mounts) == 1, path
        secret = volumes[mounts[0]["name"]].get("secret")
        assert secret, f"{path}: not from a Secret volume"
        key = path[len(mounts[0]["mountPath"].rstrip("/")) + 1 :]
        assert key in SECRETS[secret["secretName"]]["stringData"], path
