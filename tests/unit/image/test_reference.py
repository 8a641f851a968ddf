"""Reference parsing: cases after distribution/reference's own tables."""

from __future__ import annotations

import pytest

from pybuild.errors import ImageError
from pybuild.image import reference as r

H64 = "f" * 64
D = f"sha256:{H64}"


@pytest.mark.parametrize(
    "text, domain, name, tag, digest",
    [
        ("test_com", "", "test_com", None, None),
        ("test.com:tag", "", "test.com", "tag", None),
        ("test.com:5000", "", "test.com", "5000", None),
        ("test.com/repo:tag", "test.com", "test.com/repo", "tag", None),
        ("test:5000/repo", "test:5000", "test:5000/repo", None, None),
        ("test:5000/repo:tag", "test:5000", "test:5000/repo", "tag", None),
        (f"test:5000/repo@{D}", "test:5000", "test:5000/repo", None, D),
        (f"test:5000/repo:tag@{D}", "test:5000", "test:5000/repo", "tag", D),
        ("lowercase:Uppercase", "", "lowercase", "Uppercase", None),
        (
            "a/" * 127 + "a:tag-puts-this-over-max",
            "a",
            "a/" * 127 + "a",
            "tag-puts-this-over-max",
            None,
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "sub-dom1.foo.com",
            "sub-dom1.foo.com/bar/baz/quux",
            "some-long-tag",
            None,
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io",
            "b.gcr.io/test.example.com/my-app",
            "test.example.com",
            None,
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com",
            "xn--n3h.com/myimage",
            "xn--n3h.com",
            None,
        ),
        ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
        ("foo/foo_bar.com:8080", "foo", "foo/foo_bar.com", "8080", None),
        ("192.168.1.1", "", "192.168.1.1", None, None),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "192.168.1.1:5000/repo", "5050", None),
        ("[2001:db8::1]/repo", "[2001:db8::1]", "[2001:db8::1]/repo", None, None),
        (
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::1]:5000",
            "[2001:db8::1]:5000/repo",
            "tag",
            None,
        ),
        ("[::1]:5000/repo", "[::1]:5000", "[::1]:5000/repo", None, None),
    ],
)
def test_parse(text, domain, name, tag, digest):
    ref = r.parse(text)
    assert (ref.domain, ref.name, ref.tag, ref.digest) == (domain, name, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "at least one component"),
        (":justtag", "invalid reference format"),
        (f"@{D}", "invalid reference format"),
        ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
        (f"validname@invaliddigest:{H64}", "unsupported digest algorithm"),
        ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
        ("Uppercase:tag", "must be lowercase"),
        ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
        ("a/" * 128 + "a:tag", "not be more than 255"),
        ("aa/asdf$$^/aa", "invalid reference format"),
        ("[2001:db8::1]", "invalid reference format"),
        ("[2001:db8::1]:5000", "invalid reference format"),
        ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
        ("busybox:-bad", "invalid reference format"),
        ("busybox:" + "a" * 129, "invalid reference format"),
        ("busybox:a b", "invalid reference format"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ImageError, match=message.replace("$", r"\$")):
        r.parse(text)


@pytest.mark.parametrize(
    "familiar, full, domain, path",
    [
        ("fooo/bar", "docker.io/fooo/bar", "docker.io", "fooo/bar"),
        ("ubuntu", "docker.io/library/ubuntu", "docker.io", "library/ubuntu"),
        ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu"),
        ("other/library", "docker.io/other/library", "docker.io", "other/library"),
        (
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000",
            "private/moonbase",
        ),
        (
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000",
            "privatebase",
        ),
        (
            "example.com:8000/privatebasee",
            "example.com:8000/privatebasee",
            "example.com:8000",
            "privatebasee",
        ),
        (
            "ubuntu-12.04-base",
            "docker.io/library/ubuntu-12.04-base",
            "docker.io",
            "library/ubuntu-12.04-base",
        ),
        ("library/foo/bar", "docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("store/foo/bar", "docker.io/store/foo/bar", "docker.io", "store/foo/bar"),
        ("Foo/bar", "Foo/bar", "Foo", "bar"),
        ("FOO/bar", "FOO/bar", "FOO", "bar"),
        ("localhost/x", "localhost/x", "localhost", "x"),
        ("localhost:5000/a/b", "localhost:5000/a/b", "localhost:5000", "a/b"),
    ],
)
def test_normalize_and_familiar(familiar, full, domain, path):
    for text in (familiar, full):
        ref = r.parse_normalized(text)
        assert (ref.domain, ref.path, str(ref), ref.familiar_name) == (domain, path, full, familiar)


@pytest.mark.parametrize(
    "ambiguous, full",
    [
        ("index.docker.io/fooo/bar", "docker.io/fooo/bar"),
        ("library/ubuntu", "docker.io/library/ubuntu"),
        ("docker.io/foo", "docker.io/library/foo"),
        ("index.docker.io/debian", "docker.io/library/debian"),
    ],
)
def test_normalize_ambiguous(ambiguous, full):
    assert str(r.parse_normalized(ambiguous)) == full


@pytest.mark.parametrize(
    "bad",
    [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker-/docker",
        "____/____",
        "dock..er/docker",
        "dock-.er/docker",
        "docker/",
        "Uppercase",
    ],
)
def test_normalize_invalid(bad):
    with pytest.raises(ImageError):
        r.parse_normalized(bad)


@pytest.mark.parametrize(
    "good",
    [
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker---rules/docker",
        "dock__er/docker",
        "192.168.0.1:8/debian",
        "[fc00::1]:5000/docker/docker",
        "d/docker",
    ],
)
def test_normalize_valid(good):
    r.parse_normalized(good)


def test_tag_and_digest_together():
    short = f"busybox:latest@{D}"
    ref = r.parse_normalized(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.tag == "latest" and ref.digest == D
    assert ref.familiar == short


def test_default_tag_only_without_digest():
    assert str(r.parse_tagged("busybox")) == "docker.io/library/busybox:latest"
    assert r.parse_tagged(f"busybox@{D}").tag is None
    assert r.parse_tagged("busybox:1.36").tag == "1.36"


def test_with_tag_and_digest_validate():
    ref = r.parse_normalized("test.com:8000/foo")
    assert str(ref.with_tag("TAG5")) == "test.com:8000/foo:TAG5"
    with pytest.raises(ImageError):
        ref.with_tag("-foo")
    with pytest.raises(ImageError):
        ref.with_digest("foo")


def test_id_helpers():
    assert r.parse_digest_ref(H64) == D
    assert r.parse_digest_ref(D) == D
    assert r.parse_digest_ref("abc") is None
    assert r.looks_like_short_id("abc123")
    assert r.looks_like_short_id("sha256:abc")
    assert not r.looks_like_short_id("busybox")
    assert r.familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert r.familiar("localhost:5000/x:1") == "localhost:5000/x:1"
