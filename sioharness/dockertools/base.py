"""A local Python base image from Debian packages, for machines with no container registry.

    python3 -m sioharness.dockertools.base            # load from the cache, or build once (root, ~1 min)
    python3 -m sioharness.dockertools.base --rebuild  # build again even when cached

Air-gapped hosts and CI runners behind a proxy cannot pull
``python:3.11-slim``, but they do reach a Debian mirror. This builds a
minimal Debian root file system with ``debootstrap`` (python3, python3-venv,
ca-certificates, plus the host's CA bundle with the certificate variables
pointing at it, so pip inside a build trusts what the host trusts), imports
it as ``sio-loadharness/base:bookworm`` and saves it as a tarball in the
cache folder (``~/.cache/sio-loadharness/``, outside the repository). Later
runs ``docker load`` the tarball in seconds. The project's images then build
from it: ``BASE_IMAGE=sio-loadharness/base:bookworm``.

The cache key covers the recipe, the suite, the mirror and the CA bundle's
content, so a changed host bundle makes a new base instead of a stale one.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sioharness.dockertools.cli import (
    LOCAL_BASE_IMAGE,
    DockerError,
    cache_dir,
    docker_binary,
    engine_status,
    is_root,
    run,
    say,
)

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Where the host's CA bundle lands inside the image.
IMAGE_CA_BUNDLE = "/etc/ssl/certs/host-ca-bundle.crt"
#: Bump when the recipe below changes, so old caches are not reused.
RECIPE_VERSION = "1"
KEY_LABEL = "org.sio-loadharness.base-key"
# Trimmed from the root file system: nothing in the images reads them.
PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")


def host_ca_bundle() -> Path:
    """The CA bundle the host's own HTTPS clients use."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise DockerError("no CA bundle found (set SSL_CERT_FILE to the host's bundle)")


def apt_mirror(sources: list[Path] | None = None, suite: str = SUITE) -> str:
    """The Debian mirror apt on this host uses for ``suite`` (deb822 or one-line sources)."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
                   *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in sources:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822(stanza)
                if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
                    uris = fields.get("uris", "").split()
                    if uris and fields.get("enabled", "yes").lower() != "no":
                        return uris[0].rstrip("/")
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return parts[1].rstrip("/")
    return DEFAULT_MIRROR


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def cache_key(mirror: str, ca_bundle: bytes, suite: str = SUITE) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, suite, mirror, " ".join(PACKAGES)):
        digest.update(part.encode() + b"\0")
    digest.update(ca_bundle)
    return digest.hexdigest()[:16]


def tarball_path(key: str) -> Path:
    return cache_dir() / f"base-{SUITE}-{key}.tar"


def image_key(name: str) -> str | None:
    docker = docker_binary()
    if docker is None:
        return None
    result = run([docker, "image", "inspect", "--format", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', name],
                 timeout=30, check=False)
    value = (result.stdout or "").strip()
    return value if result.returncode == 0 and value and value != "<no value>" else None


def image_config(key: str) -> list[str]:
    """``docker import --change`` lines: the environment a Python base needs."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "SSL_CERT_FILE": IMAGE_CA_BUNDLE,
        "PIP_CERT": IMAGE_CA_BUNDLE,
        "REQUESTS_CA_BUNDLE": IMAGE_CA_BUNDLE,
        "CURL_CA_BUNDLE": IMAGE_CA_BUNDLE,
    }
    changes = [f"ENV {k}={v}" for k, v in env.items()]
    changes += [f'LABEL {KEY_LABEL}="{key}"', 'CMD ["python3"]']
    return [arg for change in changes for arg in ("--change", change)]


def build_rootfs(rootfs: Path, mirror: str, ca_bundle: Path) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        if not is_root():
            raise DockerError("debootstrap is not installed (apt-get install debootstrap, as root)")
        say("base: installing debootstrap (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], timeout=600, env=env)
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    say(f"base: debootstrap {SUITE} from {mirror} (about a minute)")
    run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), mirror],
        timeout=1200, nice=True)
    target = rootfs / IMAGE_CA_BUNDLE.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_bundle, target)
    os.chmod(target, 0o644)
    for relative in PRUNE:
        folder = rootfs / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def import_rootfs(rootfs: Path, key: str, name: str) -> None:
    docker = docker_binary() or "docker"
    say(f"base: importing as {name}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    try:
        result = subprocess.run([docker, "import", *image_config(key), "-", name], stdin=tar.stdout,
                                capture_output=True, text=True, timeout=600)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(timeout=60)
    if result.returncode != 0 or tar.returncode != 0:
        raise DockerError(f"docker import failed: {result.stderr.strip() or result.stdout.strip()}")


def ensure_base(*, rebuild: bool = False, name: str = LOCAL_BASE_IMAGE) -> str:
    """Make ``name`` present in the engine: as it is, from the cache, or built. Returns how."""
    if not engine_status()[0]:
        raise DockerError("no Docker engine answers (python3 -m sioharness.dockertools.engine up, as root, starts one)")
    ca_bundle = host_ca_bundle()
    mirror = apt_mirror()
    key = cache_key(mirror, ca_bundle.read_bytes())
    if not rebuild and image_key(name) == key:
        say(f"base: {name} is present")
        return "present"
    tarball = tarball_path(key)
    docker = docker_binary() or "docker"
    if not rebuild and tarball.is_file():
        started = time.monotonic()
        run([docker, "load", "-i", str(tarball)], timeout=600)
        if image_key(name) == key:
            say(f"base: loaded {name} from {tarball} in {time.monotonic() - started:.1f} s")
            return "loaded"
        say(f"base: {tarball} did not hold {name} with key {key}; building")
    if not is_root():
        raise DockerError("building the base needs root (debootstrap); or use BASE_IMAGE=python:3.11-slim "
                          "where a registry is reachable")
    started = time.monotonic()
    cache_dir().mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="base-rootfs-", dir=cache_dir()))
    try:
        build_rootfs(workdir / "rootfs", mirror, ca_bundle)
        import_rootfs(workdir / "rootfs", key, name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    partial = tarball.with_suffix(".tar.part")
    run([docker, "save", "-o", str(partial), name], timeout=600)
    partial.replace(tarball)
    for old in cache_dir().glob(f"base-{SUITE}-*.tar"):
        if old != tarball:
            old.unlink()
    say(f"base: built {name} in {time.monotonic() - started:.0f} s; cached as {tarball}")
    return "built"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m sioharness.dockertools.base",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build even when the image or its cache exists")
    parser.add_argument("--name", default=LOCAL_BASE_IMAGE, help="image name (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        ensure_base(rebuild=args.rebuild, name=args.name)
    except DockerError as exc:
        print(f"docker_base: {exc}", file=sys.stderr)
        return 2
    print(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
