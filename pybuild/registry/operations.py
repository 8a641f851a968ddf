"""The registry verbs that move no layers: login (credentials checked against the registry
before they are kept), search over `/v2/_catalog` with tags, and manifest inspection."""

from __future__ import annotations

import dataclasses
import json

from pybuild.errors import RegistryError
from pybuild.image import reference as refs
from pybuild.image.manifest import Index, parse_manifest
from pybuild.registry import credentials
from pybuild.registry.client import RegistryClient
from pybuild.registry.endpoints import endpoint
from pybuild.registry.options import RegistryOptions


def login(registry: str, creds: credentials.Credentials, options: RegistryOptions) -> str:
    """Check `creds` against the registry (GET /v2/ through its auth), then store them.
    Returns where they were stored."""
    with RegistryClient(endpoint(registry), options, credentials=creds, ref=registry) as c:
        c.ping()
    return str(credentials.store(registry, creds))


def logout(registry: str) -> bool:
    return credentials.erase(registry)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    name: str               # registry/repository, as one would pull it
    tags: tuple[str, ...]


def search(term: str, options: RegistryOptions, limit: int = 25,
           with_tags: bool = True) -> list[SearchResult]:
    """`REGISTRY/TEXT`: repositories of REGISTRY whose name contains TEXT (the catalog)."""
    registry, sep, text = term.partition("/")
    if not sep or not ("." in registry or ":" in registry or registry == "localhost"):
        raise RegistryError(
            f"search needs a registry: REGISTRY/TERM (e.g. 127.0.0.1:5000/{term}); "
            "Docker Hub's search API is not supported")
    if registry in ("docker.io", "index.docker.io"):
        raise RegistryError("Docker Hub does not allow listing its catalog", ref=registry)
    results: list[SearchResult] = []
    with RegistryClient(endpoint(registry), options, ref=registry) as c:
        try:
            names = c.catalog()
        except RegistryError as e:
            if e.status in (401, 403, 404):
                raise RegistryError(f"the registry does not allow listing its catalog: {e}",
                                    ref=registry, status=e.status) from e
            raise
        for name in names:
            if text.lower() not in name.lower():
                continue
            tags = tuple(sorted(c.tags(name))) if with_tags else ()
            results.append(SearchResult(f"{registry}/{name}", tags))
            if len(results) >= limit:
                break
    return results


@dataclasses.dataclass(frozen=True)
class Inspected:
    ref: str
    digest: str
    media_type: str
    raw: bytes
    platforms: tuple[dict, ...] = ()  # verbose: one entry per manifest of an index


def inspect_manifest(text: str, options: RegistryOptions, verbose: bool = False) -> Inspected:
    ref = refs.parse_normalized(text).with_default_tag()
    reference = ref.digest or ref.tag or "latest"
    with RegistryClient(endpoint(ref.domain), options, ref=str(ref)) as c:
        raw, media_type, digest = c.get_manifest(ref.path, reference)
        parsed = parse_manifest(raw, ref=str(ref), media_type=media_type)
        media_type = media_type or parsed.media_type
        platforms: list[dict] = []
        if verbose and isinstance(parsed, Index):
            for d in parsed.manifests:
                sub, sub_type, sub_digest = c.get_manifest(ref.path, d.digest)
                platforms.append({
                    "Ref": f"{ref.name}@{sub_digest}",
                    "Descriptor": d.to_dict(),
                    "SchemaV2Manifest": json.loads(sub),
                })
        elif verbose:
            platforms.append({
                "Ref": str(ref),
                "Descriptor": {"mediaType": media_type, "digest": digest, "size": len(raw)},
                "SchemaV2Manifest": json.loads(raw),
            })
    return Inspected(str(ref), digest, media_type, raw, tuple(platforms))
