"""Registry credentials the Docker way: `$DOCKER_CONFIG/config.json` (else
`~/.docker/config.json`) with `auths` (base64 `user:password`, or an `identitytoken`),
and credential helpers (`credHelpers` per registry, `credsStore` for all) run as
`docker-credential-<name> get|store|erase`. No httpx here: cheap to import."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

from pybuild.errors import RegistryError

# Docker Hub's credentials live under this key, whatever name the user typed.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token instead of a password

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credentials(username={self.username!r}, password=***)"


def config_dir() -> pathlib.Path:
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(os.path.expanduser("~")) / ".docker"


def config_path() -> pathlib.Path:
    return config_dir() / "config.json"


def config_key(registry: str) -> str:
    """The `auths` key Docker writes for a registry name."""
    host = normalize_host(registry)
    return DOCKER_HUB_KEY if host in DOCKER_HUB_NAMES else host


def normalize_host(name: str) -> str:
    """`https://host:port/v1/` -> `host:port`, lowercased as Docker compares them."""
    name = name.strip()
    for prefix in ("https://", "http://"):
        if name.lower().startswith(prefix):
            name = name[len(prefix) :]
    return name.split("/", 1)[0].lower()


def load_config(path: pathlib.Path | None = None) -> dict:
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RegistryError(f"cannot read {path}: {e.strerror}") from e
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise RegistryError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a JSON object")
    return data


def save_config(data: dict, path: pathlib.Path | None = None) -> None:
    """Write config.json with mode 0600, temp file then rename, so a reader never sees half."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _helper_for(config: dict, host: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    for key, name in helpers.items():
        if normalize_host(key) == host or (host in DOCKER_HUB_NAMES and key == DOCKER_HUB_KEY):
            return name
    return config.get("credsStore") or None


def _auth_entry(config: dict, host: str) -> dict | None:
    for key, entry in (config.get("auths") or {}).items():
        k = normalize_host(key)
        if k == host or (host in DOCKER_HUB_NAMES and k in DOCKER_HUB_NAMES):
            return entry if isinstance(entry, dict) else None
    return None


def _decode_auth(entry: dict, path: pathlib.Path, host: str) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials(entry.get("username", ""), "", entry["identitytoken"])
    if entry.get("auth"):
        try:
            user, sep, password = (
                base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError) as e:
            raise RegistryError(f"{path}: auths[{host}]: invalid base64 `auth`") from e
        if not sep:
            raise RegistryError(f"{path}: auths[{host}]: `auth` is not user:password")
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(entry["username"], entry.get("password", ""))
    return None


def run_helper(helper: str, action: str, payload: str) -> str:
    """Run `docker-credential-<helper> <action>` with `payload` on stdin; return its stdout."""
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise RegistryError(f"credential helper docker-credential-{helper} not found in PATH")
    r = subprocess.run([exe, action], input=payload, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        out = r.stdout.strip() or r.stderr.strip()
        if action == "get" and "credentials not found" in out.lower():
            return ""
        raise RegistryError(f"docker-credential-{helper} {action}: {out or 'failed'}")
    return r.stdout


def lookup(registry: str, config: dict | None = None) -> Credentials | None:
    """The credentials for `registry` (helpers first, then `auths`), or None: anonymous."""
    path = config_path()
    config = load_config(path) if config is None else config
    host = normalize_host(registry)
    helper = _helper_for(config, host)
    if helper:
        out = run_helper(helper, "get", config_key(host))
        if out.strip():
            try:
                data = json.loads(out)
            except json.JSONDecodeError as e:
                raise RegistryError(f"docker-credential-{helper} get: invalid JSON answer") from e
            user, secret = data.get("Username", ""), data.get("Secret", "")
            if user == "<token>":  # Docker's marker for an identity token
                return Credentials("", "", secret)
            return Credentials(user, secret)
        return None
    entry = _auth_entry(config, host)
    return _decode_auth(entry, path, host) if entry else None


def store(registry: str, creds: Credentials) -> pathlib.Path | str:
    """Remember credentials as `docker login` does; returns where they went."""
    path = config_path()
    config = load_config(path)
    host = normalize_host(registry)
    key = config_key(host)
    helper = _helper_for(config, host)
    if helper:
        run_helper(
            helper,
            "store",
            json.dumps({"ServerURL": key, "Username": creds.username, "Secret": creds.password}),
        )
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    for k in [k for k in auths if normalize_host(k) == normalize_host(key)]:
        del auths[k]
    raw = f"{creds.username}:{creds.password}".encode()
    auths[key] = {"auth": base64.b64encode(raw).decode()}
    save_config(config, path)
    return path


def erase(registry: str) -> bool:
    """Forget credentials for `registry`; False if there were none."""
    path = config_path()
    config = load_config(path)
    host = normalize_host(registry)
    key = config_key(host)
    helper = _helper_for(config, host)
    if helper:
        run_helper(helper, "erase", key)
        return True
    auths = config.get("auths") or {}
    found = [k for k in auths if normalize_host(k) == normalize_host(key)]
    for k in found:
        del auths[k]
    if found:
        save_config(config, path)
    return bool(found)
