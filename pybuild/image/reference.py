"""Image references with Docker's rules: parse, normalise (`busybox` ->
`docker.io/library/busybox:latest`), validate, and shorten back to the familiar form."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pybuild.errors import ImageError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference, spelled out with ASCII classes (Python's \w is Unicode).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_SHORT_ID_RE = re.compile(r"^[a-f0-9]{1,64}$")

DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def validate_digest(digest: str, ref: str | None = None) -> str:
    """Check `algo:hex` as go-digest does; return it unchanged."""
    algo, sep, hexpart = digest.partition(":")
    if not sep or not algo or not hexpart:
        raise ImageError(f"invalid digest {digest!r}: invalid checksum digest format", ref=ref)
    if algo not in DIGEST_HEX_LENGTHS:
        raise ImageError(f"invalid digest {digest!r}: unsupported digest algorithm", ref=ref)
    if len(hexpart) != DIGEST_HEX_LENGTHS[algo]:
        raise ImageError(f"invalid digest {digest!r}: invalid checksum digest length", ref=ref)
    if not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise ImageError(f"invalid digest {digest!r}: invalid checksum digest format", ref=ref)
    return digest


def validate_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise ImageError(
            f"invalid tag {tag!r}: a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -"
        )
    return tag


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `domain` is empty only for references parsed without normalising."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def familiar_name(self) -> str:
        """`docker.io/library/busybox` -> `busybox`, `docker.io/foo/bar` -> `foo/bar`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
            return path[len(OFFICIAL_PREFIX) :]
        return path

    @property
    def familiar(self) -> str:
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=validate_tag(tag))

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=validate_digest(digest))

    def with_default_tag(self) -> Reference:
        """Docker's TagNameOnly: add `latest` unless a tag or a digest is given."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def name_only(self) -> Reference:
        return replace(self, tag=None, digest=None)


def parse(text: str) -> Reference:
    """Parse a reference as written, without adding docker.io or library/ (Docker's Parse)."""
    if not text:
        raise ImageError(
            "invalid reference format: repository name must have at least one component"
        )
    m = _REFERENCE_RE.match(text)
    if m is None:
        if _REFERENCE_RE.match(text.lower()):
            raise ImageError(
                "invalid reference format: repository name must be lowercase", ref=text
            )
        raise ImageError("invalid reference format", ref=text)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ImageError(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters",
            ref=text,
        )
    nm = _NAME_RE.match(name)
    assert nm is not None  # the whole-reference pattern already matched the name
    if digest is not None:
        validate_digest(digest, ref=text)
    return Reference(domain=nm.group(1) or "", path=nm.group(2), tag=tag, digest=digest)


def _split_docker_domain(text: str) -> tuple[str, str]:
    i = text.find("/")
    first = text[:i] if i >= 0 else ""
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, text[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized(text: str) -> Reference:
    """Docker's ParseNormalizedNamed: `busybox` -> docker.io/library/busybox (no tag added)."""
    if _IDENTIFIER_RE.match(text):
        raise ImageError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    if not text:
        raise ImageError(
            "invalid reference format: repository name must have at least one component"
        )
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0].split("@", 1)[0]
    if remote.lower() != remote:
        raise ImageError(
            f"invalid reference format: repository name ({remote}) must be lowercase", ref=text
        )
    try:
        ref = parse(f"{domain}/{remainder}")
    except ImageError as e:  # name the reference as the user wrote it
        raise ImageError(str(e).split(": ", 1)[1] if e.ref else str(e), ref=text) from None
    if ref.domain != domain:  # e.g. "a:b/c" -> the remainder swallowed a second domain
        raise ImageError("invalid reference format", ref=text)
    return ref


def parse_tagged(text: str) -> Reference:
    """parse_normalized plus the default tag: what `tag`, `import`, `bootstrap` store."""
    return parse_normalized(text).with_default_tag()


def parse_digest_ref(text: str) -> str | None:
    """`sha256:<64 hex>` or a bare 64-hex id -> the digest; anything else -> None."""
    if _IDENTIFIER_RE.match(text):
        return f"sha256:{text}"
    if text.startswith("sha256:") and _IDENTIFIER_RE.match(text[7:]):
        return text
    return None


def looks_like_short_id(text: str) -> bool:
    """A (possibly truncated) hex image id, with or without `sha256:`."""
    if text.startswith("sha256:"):
        text = text[7:]
    return bool(_SHORT_ID_RE.match(text))


def familiar(text: str) -> str:
    """A stored full reference string shortened for display."""
    try:
        return parse(text).familiar
    except ImageError:
        return text
