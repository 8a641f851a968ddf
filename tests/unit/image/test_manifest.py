"""Manifests, indexes and configs: round trips, canonical bytes, conversion, validation."""

from __future__ import annotations

import json

import pytest

from pybuild.errors import ImageError
from pybuild.image import config as c
from pybuild.image import manifest as m

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def _manifest(fmt="oci"):
    return m.Manifest(
        config=m.Descriptor(m.MT_OCI_CONFIG, D1, 100),
        layers=(
            m.Descriptor(m.MT_OCI_LAYER_GZIP, D2, 2000),
            m.Descriptor(m.MT_OCI_LAYER_ZSTD, D3, 10),
        ),
    ).converted(fmt)


def test_manifest_round_trip_and_canonical_bytes():
    man = _manifest()
    data = man.to_bytes()
    assert data == m.canonical_json(json.loads(data))  # stable: sorted keys, compact
    assert m.parse_manifest(data) == man
    assert man.digest() == m.sha256_digest(data)


def test_convert_to_docker_and_back():
    dm = _manifest("docker")
    assert dm.media_type == m.MT_DOCKER_MANIFEST
    assert dm.config.media_type == m.MT_DOCKER_CONFIG
    assert [layer.media_type for layer in dm.layers] == [
        m.MT_DOCKER_LAYER_GZIP,
        m.MT_DOCKER_LAYER_ZSTD,
    ]
    assert dm.converted("oci") == _manifest()
    assert m.parse_manifest(dm.to_bytes()) == dm
    with pytest.raises(ImageError):
        dm.converted("v1")


def test_media_type_guessed_when_absent():
    man = _manifest().to_dict()
    del man["mediaType"]
    assert isinstance(m.parse_manifest(json.dumps(man).encode()), m.Manifest)
    idx = {"schemaVersion": 2, "manifests": []}
    assert isinstance(m.parse_manifest(json.dumps(idx).encode()), m.Index)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"{not json", "corrupt manifest: invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"schemaVersion": 1, "name": "x"}', "schema 1"),
        (b'{"schemaVersion": 3}', "schemaVersion"),
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}',
            "missing field 'config'",
        ),
        (
            b'{"schemaVersion": 2, "mediaType": "application/x-nope"}',
            "unsupported manifest media type",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": m.MT_OCI_MANIFEST,
                    "config": {"mediaType": m.MT_OCI_CONFIG, "digest": "sha256:xyz", "size": 1},
                    "layers": [],
                }
            ).encode(),
            "invalid digest",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": m.MT_OCI_MANIFEST,
                    "config": {"mediaType": m.MT_OCI_CONFIG, "digest": D1, "size": -1},
                    "layers": [],
                }
            ).encode(),
            "negative size",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": m.MT_OCI_MANIFEST,
                    "config": {"mediaType": m.MT_OCI_CONFIG, "digest": D1, "size": "1"},
                    "layers": [],
                }
            ).encode(),
            "wrong type",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": m.MT_OCI_MANIFEST,
                    "config": {"mediaType": m.MT_OCI_CONFIG, "digest": D1},
                    "layers": [],
                }
            ).encode(),
            "missing field 'size'",
        ),
    ],
)
def test_manifest_errors(data, message):
    with pytest.raises(ImageError, match=message):
        m.parse_manifest(data, ref="x:1")


def _index():
    def d(arch, variant=None):
        return m.Descriptor(
            m.MT_OCI_MANIFEST,
            m.sha256_digest(f"{arch}{variant}".encode()),
            1,
            platform=m.Platform(arch, "linux", variant),
        )

    return m.Index(
        manifests=(d("amd64"), d("arm", "v6"), d("arm", "v7"), d("arm64", "v8"), d("s390x"))
    )


def test_index_platform_selection():
    idx = _index()
    assert m.parse_manifest(idx.to_bytes()) == idx
    assert idx.select(m.Platform("amd64", "linux")).platform.architecture == "amd64"
    assert idx.select(m.parse_platform("linux/arm/v6")).platform.variant == "v6"
    assert idx.select(m.parse_platform("linux/arm")).platform.variant == "v7"  # arm means v7
    assert idx.select(m.parse_platform("linux/arm64")).platform.variant == "v8"
    assert idx.select().platform.architecture == m.host_platform().architecture
    with pytest.raises(ImageError, match="no image for platform linux/mips64"):
        idx.select(m.parse_platform("linux/mips64"))
    with pytest.raises(ImageError):
        m.parse_platform("linux")


def test_docker_manifest_list_parses():
    data = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": m.MT_DOCKER_LIST,
            "manifests": [
                {
                    "mediaType": m.MT_DOCKER_MANIFEST,
                    "digest": D1,
                    "size": 5,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    idx = m.parse_manifest(data)
    assert isinstance(idx, m.Index) and idx.select(m.Platform("amd64", "linux")).digest == D1


def _config():
    return c.ImageConfig(
        architecture="amd64",
        os="linux",
        created="2024-01-02T03:04:05Z",
        author="me",
        config=c.ContainerConfig(
            user="nobody",
            exposed_ports=("53/udp", "80/tcp"),
            env=("PATH=/bin", "A=b=c"),
            entrypoint=("/bin/sh", "-c"),
            cmd=(),
            volumes=("/data",),
            working_dir="/srv",
            labels={"a": "1"},
            stop_signal="SIGTERM",
            healthcheck=c.Healthcheck(test=("CMD", "true"), interval=30_000_000_000, retries=3),
            on_build=("RUN echo hi",),
            shell=("/bin/sh", "-c"),
        ),
        diff_ids=(D2,),
        history=(
            c.HistoryEntry(created="2024-01-02T03:04:05Z", created_by="ADD x /"),
            c.HistoryEntry(created_by="CMD []", empty_layer=True, comment="c"),
        ),
        extra={"docker_version": "20.10"},
    )


def test_config_round_trip():
    cfg = _config()
    data = cfg.to_bytes()
    back = c.parse_config(data)
    assert back == cfg
    assert back.to_bytes() == data
    assert cfg.digest() == m.sha256_digest(data)
    assert back.config.cmd == () and back.config.entrypoint == ("/bin/sh", "-c")
    assert back.config.env_dict() == {"PATH": "/bin", "A": "b=c"}
    assert [d for _, d in cfg.layer_history()] == [D2, None]
    assert json.loads(data)["config"]["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}


def test_config_cmd_unset_vs_empty():
    unset = c.parse_config(
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
    )
    assert unset.config.cmd is None
    legacy = c.parse_config(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": "sh"},
                "rootfs": {"type": "layers"},
            }
        ).encode()
    )
    assert legacy.config.cmd == ("sh",)


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"architecture": "amd64", "os": "linux"}, "missing field 'rootfs'"),
        ({"architecture": "amd64", "os": "linux", "rootfs": {"type": "x"}}, "rootfs type"),
        (
            {"os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
            "missing field 'architecture'",
        ),
        (
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": ["nope"]},
            },
            "invalid digest",
        ),
        (
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Env": [1]},
            },
            "Env must be",
        ),
        (
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [3],
            },
            "history entry",
        ),
    ],
)
def test_config_errors(obj, message):
    with pytest.raises(ImageError, match=message):
        c.parse_config(json.dumps(obj).encode())
    with pytest.raises(ImageError, match="corrupt image config"):
        c.parse_config(b"\x00\x01")


def test_times():
    assert c.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert c.rfc3339(1.5) == "1970-01-01T00:00:01.5Z"
    assert c.parse_time("2024-01-02T03:04:05.123456789Z") == pytest.approx(1704164645.123456)
    assert c.parse_time("2024-01-02T04:04:05+01:00") == 1704164645
    assert c.parse_time("garbage") is None
