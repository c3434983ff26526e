"""The Kubernetes recipe (``deploy/k8s/``), checked without a cluster.

Every YAML document under ``deploy/k8s`` is loaded and checked for what a
cluster would only reveal at run time: the objects' identities, Deployment
selectors against their pod labels, Services against the pods and ports they
select, the Locust master and workers running the harness's locustfile and
finding each other, the target's arguments parsed by the target's own parser,
the images the Docker build produces, and the compose stack's environment
(the loopback guard opened for the cluster's own target). Each check is also
run on a broken copy, so it is known to fail.

``kubectl kustomize`` (offline) renders the manifests and the shared-results
patch with kubectl's own parser and strategic merge; ``kubectl apply
--dry-run=client`` also needs an API server to answer (discovery), so it
skips without one.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from loadtests.runtime.options import ENV_OWN_HOST
from sioharness.dockertools.cli import COMPOSE_FILE, DOCKERFILE, LOCUST_IMAGE, REPO_ROOT, TARGET_IMAGE
from target_app.settings import build_parser, parse_settings

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: it reads the manifests (pin it in "
                                          "requirements-dev.lock)")

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
#: YAML under deploy/k8s that is not a Kubernetes object
PATCH_FILE = Path("shared-results") / "results-on-pvc.yaml"
HELM_VALUES = Path("helm") / "values.yaml"
NOT_OBJECTS = {PATCH_FILE, HELM_VALUES}
PVC_FILE = Path("shared-results") / "results-pvc.yaml"
#: values that switch the loopback guard off, as loadtests.runtime.options reads its environment flag
TRUTHY = ("1", "true", "yes", "on")


# --- loading ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    """One YAML document and where it came from."""

    file: Path
    body: Any

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", "")) if isinstance(self.body, dict) else ""

    @property
    def name(self) -> str:
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""

    def where(self) -> str:
        return f"{self.file}: {self.kind or '?'} {self.name or '?'}"


def yaml_files(root: Path) -> list[Path]:
    """Every YAML file under ``root``, relative to it."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_yaml(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_objects(root: Path) -> list[Doc]:
    """Every Kubernetes object under ``root`` (not the patch, not the Helm values)."""
    return [Doc(rel, body) for rel in yaml_files(root) if rel not in NOT_OBJECTS
            for body in load_yaml(root / rel)]


def compose_services() -> dict[str, Any]:
    services = load_yaml(COMPOSE_FILE)[0]["services"]
    assert isinstance(services, dict)
    return services


# --- pieces of objects ----------------------------------------------------------------------------------


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.kind == kind]


def dig(body: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def containers(deployment: Doc) -> list[dict[str, Any]]:
    found = dig(deployment.body, "spec", "template", "spec", "containers")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def pod_labels(deployment: Doc) -> dict[str, Any]:
    return dig(deployment.body, "spec", "template", "metadata", "labels") or {}


def argv(container: dict[str, Any]) -> list[str]:
    """What the container runs (every manifest here sets both command and args)."""
    return [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if isinstance(e, dict)}


def option(args: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in ``args``, else None."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def selected_by(service: Doc, deployments: list[Doc]) -> list[Doc]:
    return [d for d in deployments if selects(dig(service.body, "spec", "selector") or {}, pod_labels(d))]


def service_for(name: str, docs: list[Doc]) -> Doc | None:
    return next((s for s in of_kind(docs, "Service") if s.name == name), None)


def locustfile_argv() -> list[str]:
    """How the Locust image runs the harness's locustfile (docker/Dockerfile's ENTRYPOINT)."""
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert match, "docker/Dockerfile has no exec-form ENTRYPOINT"
    return [str(a) for a in json.loads(match.group(1))]


def role_deployments(docs: list[Doc]) -> dict[str, list[Doc]]:
    """Deployments by what they run: master, worker, target, redis."""
    roles: dict[str, list[Doc]] = {"master": [], "worker": [], "target": [], "redis": []}
    for deployment in of_kind(docs, "Deployment"):
        for container in containers(deployment):
            args = argv(container)
            if args[:1] == ["locust"] and "--master" in args:
                roles["master"].append(deployment)
            elif args[:1] == ["locust"] and "--worker" in args:
                roles["worker"].append(deployment)
            elif args[:3] == ["python", "-m", "target_app"]:
                roles["target"].append(deployment)
            elif args[:1] == ["redis-server"]:
                roles["redis"].append(deployment)
    return roles


# --- checks: each returns the problems it finds ----------------------------------------------------------


def check_identity(docs: list[Doc]) -> list[str]:
    problems = []
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        if not isinstance(doc.body, dict):
            problems.append(f"{doc.file}: a document that is not a mapping")
            continue
        for key in ("apiVersion", "kind"):
            if not isinstance(doc.body.get(key), str) or not doc.body[key]:
                problems.append(f"{doc.where()}: no {key}")
        if not doc.name:
            problems.append(f"{doc.where()}: no metadata.name")
        if (doc.kind, doc.name) in seen:
            problems.append(f"{doc.where()}: defined twice")
        seen.add((doc.kind, doc.name))
    return problems


def check_deployments(docs: list[Doc]) -> list[str]:
    problems = []
    for deployment in of_kind(docs, "Deployment"):
        selector = dig(deployment.body, "spec", "selector", "matchLabels") or {}
        if not selects(selector, pod_labels(deployment)):
            problems.append(f"{deployment.where()}: selector {selector} does not match its pod labels "
                            f"{pod_labels(deployment)}")
        if not containers(deployment):
            problems.append(f"{deployment.where()}: no containers")
        for container in containers(deployment):
            if not container.get("name") or not container.get("image"):
                problems.append(f"{deployment.where()}: a container without name or image")
    return problems


def check_services(docs: list[Doc]) -> list[str]:
    problems = []
    deployments = of_kind(docs, "Deployment")
    for service in of_kind(docs, "Service"):
        pods = selected_by(service, deployments)
        if not pods:
            problems.append(f"{service.where()}: selector {dig(service.body, 'spec', 'selector')} "
                            "selects no Deployment's pods")
            continue
        ports = [p for d in pods for c in containers(d) for p in c.get("ports") or []]
        numbers = {p.get("containerPort") for p in ports}
        names = {p.get("name") for p in ports if p.get("name")}
        for port in dig(service.body, "spec", "ports") or []:
            target = port.get("targetPort", port.get("port"))
            if target not in numbers and target not in names:
                problems.append(f"{service.where()}: targetPort {target} is no containerPort of "
                                f"{', '.join(d.name for d in pods)} ({sorted(numbers)})")
    return problems


def service_url_problems(url: str, docs: list[Doc], pods: list[Doc], what: str) -> list[str]:
    """``url`` names a Service (and one of its ports) that selects one of ``pods``."""
    parts = urlsplit(url)
    service = service_for(parts.hostname or "", docs)
    if service is None:
        return [f"{what} {url}: {parts.hostname!r} is no Service of the manifests"]
    if not set(d.name for d in selected_by(service, of_kind(docs, "Deployment"))) & {d.name for d in pods}:
        return [f"{what} {url}: Service {service.name} does not select {', '.join(d.name for d in pods)}"]
    if parts.port not in {p.get("port") for p in dig(service.body, "spec", "ports") or []}:
        return [f"{what} {url}: Service {service.name} has no port {parts.port}"]
    return []


def check_locust(docs: list[Doc]) -> list[str]:
    roles = role_deployments(docs)
    problems = []
    if len(roles["master"]) != 1:
        problems.append(f"one Deployment must run the Locust master (--master), found {len(roles['master'])}")
    if not roles["worker"]:
        problems.append("no Deployment runs Locust workers (--worker)")
    if not roles["target"]:
        problems.append("no Deployment runs the target (python -m target_app)")
    if problems:
        return problems
    entry = locustfile_argv()
    compose_env = compose_services()["master"]["environment"]
    for deployment in roles["master"] + roles["worker"]:
        for container in containers(deployment):
            args, env = argv(container), env_of(container)
            if args[:len(entry)] != entry:
                problems.append(f"{deployment.where()}: runs {shlex.join(args)}, not the harness's locustfile "
                                f"({shlex.join(entry)})")
            if env.get(ENV_OWN_HOST, "").strip().lower() not in TRUTHY:
                problems.append(f"{deployment.where()}: {ENV_OWN_HOST} is not set: the loopback guard refuses "
                                "the in-cluster target")
            for key in ("LOCUST_WEB_HOST", "LOCUST_MASTER_BIND_HOST"):
                if env.get(key) != compose_env[key]:
                    problems.append(f"{deployment.where()}: {key}={env.get(key)!r}, the compose stack sets "
                                    f"{compose_env[key]!r}")
    master = roles["master"][0]
    host = option(argv(containers(master)[0]), "--host")
    if host is None:
        problems.append(f"{master.where()}: no --host")
    else:
        problems += service_url_problems(host, docs, roles["target"], f"{master.where()}: --host")
    for worker in roles["worker"]:
        args = argv(containers(worker)[0])
        master_host = option(args, "--master-host")
        port = int(option(args, "--master-port") or 5557)
        service = service_for(master_host or "", docs)
        if service is None or master not in selected_by(service, of_kind(docs, "Deployment")):
            problems.append(f"{worker.where()}: --master-host {master_host!r} is not the master's Service")
        elif port not in {p.get("port") for p in dig(service.body, "spec", "ports") or []}:
            problems.append(f"{worker.where()}: the master's Service {service.name} has no port {port}")
    return problems


def parse_target_args(args: list[str], env: dict[str, str]) -> tuple[Any, str | None]:
    """The target's settings from its own parser, or the error it reports."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _, unknown = build_parser().parse_known_args(args)
            if unknown:
                return None, f"options the target does not accept: {' '.join(unknown)}"
            return parse_settings(args, environ=env), None
    except SystemExit:
        return None, stderr.getvalue().strip().splitlines()[-1]
    except ValueError as exc:
        return None, str(exc)


def check_target(docs: list[Doc]) -> list[str]:
    roles = role_deployments(docs)
    problems = []
    for deployment in roles["target"]:
        container = containers(deployment)[0]
        settings, error = parse_target_args(argv(container)[3:], env_of(container))
        if error:
            problems.append(f"{deployment.where()}: {error}")
            continue
        if settings.host in ("127.0.0.1", "localhost", "::1"):
            problems.append(f"{deployment.where()}: --host {settings.host} is unreachable from other pods")
        if settings.port not in {p.get("containerPort") for p in container.get("ports") or []}:
            problems.append(f"{deployment.where()}: --port {settings.port} is not a containerPort")
        probe = dig(container, "readinessProbe", "httpGet") or {}
        if (probe.get("path"), probe.get("port")) != ("/healthz", settings.port):
            problems.append(f"{deployment.where()}: readiness is not /healthz on port {settings.port}")
        if settings.message_queue:
            url = settings.message_queue.replace("redis://", "http://", 1)
            problems += service_url_problems(url, docs, roles["redis"], f"{deployment.where()}: --message-queue")
    return problems


def check_images(docs: list[Doc]) -> list[str]:
    """The images are the ones the Docker build makes (dockertools' names; Redis as compose names it)."""
    roles = role_deployments(docs)
    services = compose_services()
    wanted = {"target": TARGET_IMAGE, "master": LOCUST_IMAGE, "worker": LOCUST_IMAGE,
              "redis": services["redis"]["image"]}
    problems = []
    for role, image in wanted.items():
        for deployment in roles[role]:
            for container in containers(deployment):
                if container.get("image") != image:
                    problems.append(f"{deployment.where()}: image {container.get('image')}, the build makes {image}")
    for deployment in roles["redis"]:
        command = argv(containers(deployment)[0])
        if command != services["redis"]["command"]:
            problems.append(f"{deployment.where()}: runs {shlex.join(command)}, compose runs "
                            f"{shlex.join(services['redis']['command'])}")
    return problems


def check_shared_results(root: Path, docs: list[Doc]) -> list[str]:
    """The patch swaps the Locust pods' results volume for a ReadWriteMany claim of the manifests."""
    patch = load_yaml(root / PATCH_FILE)[0]
    volumes = dig(patch, "spec", "template", "spec", "volumes") or []
    claims = {d.name: d for d in of_kind(docs, "PersistentVolumeClaim")}
    problems = []
    for volume in volumes:
        claim = dig(volume, "persistentVolumeClaim", "claimName")
        if claim not in claims:
            problems.append(f"{PATCH_FILE}: claim {claim!r} is no PersistentVolumeClaim of the manifests")
        elif "ReadWriteMany" not in (dig(claims[claim].body, "spec", "accessModes") or []):
            problems.append(f"{PVC_FILE}: {claim} is not ReadWriteMany")
    roles = role_deployments(docs)
    for deployment in roles["master"] + roles["worker"]:
        own = {v.get("name") for v in dig(deployment.body, "spec", "template", "spec", "volumes") or []}
        for volume in volumes:
            if volume.get("name") not in own:
                problems.append(f"{PATCH_FILE}: {deployment.name} has no volume {volume.get('name')!r}")
    return problems


def check_helm_values(values: dict[str, Any], docs: list[Doc]) -> list[str]:
    """deliveryhero/locust values: the harness's image and locustfile, the manifests' target."""
    problems = []
    image = f"{dig(values, 'image', 'repository')}:{dig(values, 'image', 'tag')}"
    if image != LOCUST_IMAGE:
        problems.append(f"{HELM_VALUES}: image {image}, the build makes {LOCUST_IMAGE}")
    for role in ("master", "worker"):
        command = [str(a) for a in dig(values, role, "command") or []]
        if command != locustfile_argv():
            problems.append(f"{HELM_VALUES}: {role}.command {command} does not run the harness's locustfile")
        if f"--{role}" not in (dig(values, role, "args") or []):
            problems.append(f"{HELM_VALUES}: {role}.args lack --{role}")
    host = str(dig(values, "loadtest", "locust_host") or "")
    problems += service_url_problems(host, docs, role_deployments(docs)["target"], f"{HELM_VALUES}: locust_host")
    env = {str(k): str(v) for k, v in (dig(values, "loadtest", "environment") or {}).items()}
    if env.get(ENV_OWN_HOST, "").lower() not in TRUTHY:
        problems.append(f"{HELM_VALUES}: loadtest.environment lacks {ENV_OWN_HOST}")
    if env.get("LOCUST_WEB_HOST") != "0.0.0.0":
        problems.append(f"{HELM_VALUES}: the web UI would listen on the pod's loopback (LOCUST_WEB_HOST)")
    return problems


CHECKS: list[Callable[[list[Doc]], list[str]]] = [
    check_identity, check_deployments, check_services, check_locust, check_target, check_images]


def all_problems(root: Path) -> list[str]:
    docs = load_objects(root)
    problems = [p for check in CHECKS for p in check(docs)]
    problems += check_shared_results(root, docs)
    problems += check_helm_values(load_yaml(root / HELM_VALUES)[0], docs)
    return problems


# --- the recipe as it is -----------------------------------------------------------------------------


def test_every_yaml_file_is_an_object_the_patch_or_the_helm_values() -> None:
    files = yaml_files(K8S_DIR)
    assert set(files) >= NOT_OBJECTS
    objects = load_objects(K8S_DIR)
    assert {d.file for d in objects} == set(files) - NOT_OBJECTS
    kinds = sorted((d.kind, d.name) for d in objects)
    assert kinds == [("Deployment", "sio-locust-master"), ("Deployment", "sio-locust-worker"),
                     ("Deployment", "sio-redis"), ("Deployment", "sio-target"),
                     ("PersistentVolumeClaim", "sio-results"),
                     ("Service", "sio-locust-master"), ("Service", "sio-redis"), ("Service", "sio-target")]
    # `kubectl apply -f deploy/k8s` takes the top folder only: the claim is opt-in
    assert {d.file.parent for d in objects if d.kind != "PersistentVolumeClaim"} == {Path(".")}


def test_the_recipe_has_no_problems() -> None:
    assert all_problems(K8S_DIR) == []


def test_the_roles_are_wired_as_in_the_compose_stack() -> None:
    docs = load_objects(K8S_DIR)
    roles = role_deployments(docs)
    assert {role: [d.name for d in found] for role, found in roles.items()} == {
        "master": ["sio-locust-master"], "worker": ["sio-locust-worker"],
        "target": ["sio-target"], "redis": ["sio-redis"]}
    master, worker = argv(containers(roles["master"][0])[0]), argv(containers(roles["worker"][0])[0])
    assert master == [*locustfile_argv(), "--master", "--host", "http://sio-target:5000"]
    assert worker == [*locustfile_argv(), "--worker", "--master-host", "sio-locust-master"]
    target = containers(roles["target"][0])[0]
    settings, error = parse_target_args(argv(target)[3:], env_of(target))
    assert error is None
    assert (settings.async_mode, settings.server, settings.host, settings.port, settings.message_queue) == (
        "threading", "dev", "0.0.0.0", 5000, "redis://sio-redis:6379/0")
    # the compose stack's own defaults for the same service
    assert compose_services()["target"]["environment"]["TARGET_ASYNC_MODE"] == "${TARGET_ASYNC_MODE:-threading}"


# --- broken copies: every check can fail -------------------------------------------------------------


BROKEN: list[tuple[str, str, str, str, str]] = [
    # (id, file, text, replacement, a fragment of the problem reported)
    ("selector", "locust-worker.yaml", "      app.kubernetes.io/component: worker\n  template:",
     "      app.kubernetes.io/component: workers\n  template:", "does not match its pod labels"),
    ("service-selects-nothing", "redis.yaml", "    app.kubernetes.io/component: message-queue\n  ports:",
     "    app.kubernetes.io/component: queue\n  ports:", "selects no Deployment's pods"),
    ("target-port", "target.yaml", "      targetPort: 5000", "      targetPort: 5001",
     "targetPort 5001 is no containerPort"),
    ("master-host", "locust-worker.yaml", '"--master-host", "sio-locust-master"', '"--master-host", "master"',
     "--master-host 'master' is not the master's Service"),
    ("no-master", "locust-master.yaml", 'args: ["--master", ', "args: [",
     "one Deployment must run the Locust master"),
    ("master-host-url", "locust-master.yaml", '"http://sio-target:5000"', '"http://target:5000"',
     "'target' is no Service"),
    ("locustfile", "locust-worker.yaml", '"-f", "/app/locustfile.py"', '"-f", "/app/other.py"',
     "not the harness's locustfile"),
    ("unknown-target-option", "target.yaml", "- --log-level\n", "- --log-levle\n",
     "options the target does not accept: --log-levle"),
    ("bad-async-mode", "target.yaml", "- threading\n", "- gevnt\n", "invalid choice: 'gevnt'"),
    ("mode-and-server", "target.yaml", "- dev\n", "- uvicorn\n", "runs under dev, gunicorn, not 'uvicorn'"),
    ("loopback-target", "target.yaml", "- 0.0.0.0\n", "- 127.0.0.1\n", "unreachable from other pods"),
    ("message-queue", "target.yaml", "redis://sio-redis:6379/0", "redis://redis:6379/0",
     "'redis' is no Service"),
    ("target-image", "target.yaml", "image: sio-loadharness/target:latest", "image: sio-loadharness/target:v2",
     "the build makes sio-loadharness/target:latest"),
    ("redis-command", "redis.yaml", '"--appendonly", "no"', '"--appendonly", "yes"', "compose runs"),
    ("loopback-guard", "locust-worker.yaml", f'- name: {ENV_OWN_HOST}\n              value: "1"',
     f'- name: {ENV_OWN_HOST}\n              value: "0"', "the loopback guard refuses"),
    ("web-host", "locust-master.yaml", "value: 0.0.0.0", "value: 127.0.0.1", "LOCUST_WEB_HOST='127.0.0.1'"),
    ("no-name", "redis.yaml", "kind: Service\nmetadata:\n  name: sio-redis\n", "kind: Service\nmetadata:\n",
     "no metadata.name"),
    ("claim-name", str(PATCH_FILE), "claimName: sio-results", "claimName: results",
     "claim 'results' is no PersistentVolumeClaim"),
    ("claim-mode", str(PVC_FILE), '["ReadWriteMany"]', '["ReadWriteOnce"]', "is not ReadWriteMany"),
    ("helm-args", str(HELM_VALUES), 'args: ["--worker"]', "args: []", "worker.args lack --worker"),
    ("helm-host", str(HELM_VALUES), "locust_host: http://sio-target:5000", "locust_host: http://sio-target:80",
     "has no port 80"),
    ("helm-image", str(HELM_VALUES), "repository: sio-loadharness/locust", "repository: locustio/locust",
     "the build makes sio-loadharness/locust:latest"),
]


@pytest.mark.parametrize("file, text, replacement, fragment", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_copy_is_reported(tmp_path: Path, file: str, text: str, replacement: str, fragment: str) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    path = copy / file
    original = path.read_text(encoding="utf-8")
    assert original.count(text) == 1, f"{file} should hold {text!r} once"
    path.write_text(original.replace(text, replacement), encoding="utf-8")
    problems = all_problems(copy)
    assert any(fragment in p for p in problems), problems


# --- kubectl ------------------------------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not on PATH")
    return path


def kustomize(tmp_path: Path, patch: bool) -> list[Any]:
    """``kubectl kustomize`` (offline) over a copy of the manifests; the rendered documents."""
    work = tmp_path / "kustomize"
    files = [str(rel) for rel in yaml_files(K8S_DIR) if rel not in NOT_OBJECTS]
    shutil.copytree(K8S_DIR, work)
    config: dict[str, Any] = {"resources": files}
    if patch:
        # kustomize parses a strategic merge patch as an object: give it the identity kubectl patch does not need
        body = load_yaml(K8S_DIR / PATCH_FILE)[0] | {"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "metadata": {"name": "any"}}
        (work / "patch.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
        config["patches"] = [{"path": "patch.yaml", "target": {
            "kind": "Deployment", "labelSelector": "app.kubernetes.io/name=sio-locust"}}]
    (work / "kustomization.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run([kubectl(), "kustomize", str(work)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def test_kubectl_reads_every_object(tmp_path: Path) -> None:
    rendered = kustomize(tmp_path, patch=False)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d.kind, d.name) for d in load_objects(K8S_DIR))


def test_the_patch_puts_the_locust_pods_on_the_shared_claim(tmp_path: Path) -> None:
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(tmp_path, patch=True)}

    def volumes(name: str) -> list[dict[str, Any]]:
        return rendered[("Deployment", name)]["spec"]["template"]["spec"].get("volumes", [])

    for name in ("sio-locust-master", "sio-locust-worker"):
        assert volumes(name) == [{"name": "results", "persistentVolumeClaim": {"claimName": "sio-results"}}]
    assert volumes("sio-target") == []


def test_kubectl_client_dry_run(tmp_path: Path) -> None:
    binary = kubectl()
    probe = subprocess.run([binary, "version", "--request-timeout=5s", "-o", "json"], capture_output=True,
                           text=True, timeout=30)
    if '"serverVersion"' not in probe.stdout:
        reason = (probe.stderr.strip().splitlines() or ["no server version"])[-1]
        pytest.skip(f"kubectl is installed but no API server answers (client dry-run still asks one for its "
                    f"API discovery): {reason}")
    for target in (K8S_DIR, K8S_DIR / PVC_FILE):
        result = subprocess.run([binary, "apply", "--dry-run=client", "-f", str(target)], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
