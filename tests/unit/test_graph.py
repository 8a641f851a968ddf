"""The stage graph: bases, dependencies, --target pruning, cycles, build order, levels."""

import pathlib

import pytest

from pybuild.builder.graph import Dependency, build_graph, platform_args
from pybuild.errors import DockerfileError
from pybuild.grammar import parse

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "dockerfiles"
AUTO = {"BUILDPLATFORM": "linux/amd64", "TARGETPLATFORM": "linux/arm64", "TARGETARCH": "arm64"}


def graph_of(text, **kw):
    kw.setdefault("auto_args", AUTO)
    return build_graph(parse(text), **kw)


def labels(graph, indexes):
    return [graph.stages[i].label for i in indexes]


def multi_stage(**kw):
    source = (FIXTURES / "multi-stage" / "Dockerfile").read_bytes()
    return build_graph(parse(source), auto_args=AUTO, **kw)


def test_multi_stage_fixture_default_target_prunes_test():
    graph = multi_stage()
    assert labels(graph, range(4)) == ["build", "docs", "test", "final"]
    assert graph.target == 3
    assert labels(graph, graph.order) == ["build", "docs", "final"]
    assert labels(graph, graph.skipped) == ["test"]
    assert [labels(graph, level) for level in graph.levels] == [["build", "docs"], ["final"]]
    final = graph.stages[3]
    assert final.base == "busybox:1.36" and final.base_stage is None
    assert final.dependencies == (
        Dependency("base", 16, image="busybox:1.36"),
        Dependency("copy", 17, stage=0),
        Dependency("copy", 18, stage=1),
    )
    assert graph.global_env == (("BUSYBOX_VERSION", "1.36"),)


def test_target_selects_and_prunes():
    graph = multi_stage(target="TEST")
    assert graph.target == 2
    assert labels(graph, graph.order) == ["build", "test"]
    assert labels(graph, graph.skipped) == ["docs", "final"]
    assert [labels(graph, level) for level in graph.levels] == [["build"], ["test"]]
    assert graph.stages[2].base_stage == 0
    assert graph.stages[2].dependencies == (Dependency("base", 13, stage=0),)


def test_build_arg_overrides_global_default():
    graph = multi_stage(build_args={"BUSYBOX_VERSION": "1.35", "UNUSED": "x"})
    assert graph.stages[0].base == "busybox:1.35"
    assert graph.global_env == (("BUSYBOX_VERSION", "1.35"),)
    assert graph.build_args == (("BUSYBOX_VERSION", "1.35"), ("UNUSED", "x"))


def test_unknown_target_lists_the_stages():
    with pytest.raises(DockerfileError) as caught:
        multi_stage(target="nope")
    assert caught.value.line is None
    assert caught.value.reason == (
        'target stage "nope" could not be found; the named stages are: build, docs, test, final'
    )
    with pytest.raises(DockerfileError) as caught:
        multi_stage(target="buidl")
    assert "could not be found (did you mean build?)" in caught.value.reason
    with pytest.raises(DockerfileError) as caught:
        graph_of("FROM busybox\n", target="x")
    assert caught.value.reason.endswith(
        "the named stages are: none (name a stage with FROM ... AS <name>)"
    )


def test_global_args_chain_and_build_args_reach_only_declared_args():
    graph = graph_of(
        "ARG A=1\nARG B=${A}.0\nFROM img:$B\nFROM other:${TAG:-dflt}\n", build_args={"TAG": "given"}
    )
    assert graph.stages[0].base == "img:1.0"
    assert graph.stages[1].base == "other:dflt"  # TAG was never declared with ARG
    assert [(w.line, w.rule, w.message) for w in graph.warnings] == [
        (4, "UndefinedArgInFrom", "FROM argument 'TAG' is not declared")
    ]


def test_arg_without_default_takes_the_build_arg():
    graph = graph_of("ARG TAG\nFROM busybox:$TAG\n", build_args={"TAG": "musl"})
    assert graph.stages[0].base == "busybox:musl"


def test_automatic_platform_args_in_from():
    graph = graph_of("FROM --platform=$BUILDPLATFORM golang AS build\nFROM alpine:$TARGETARCH\n")
    assert graph.stages[0].platform == "linux/amd64"
    assert graph.stages[1].base == "alpine:arm64"
    assert graph.warnings == ()


def test_platform_args_describe_this_host():
    args = platform_args("final")
    assert args["TARGETSTAGE"] == "final"
    assert args["BUILDPLATFORM"].startswith("linux/")
    assert args["TARGETOS"] == "linux"


def test_global_arg_used_in_a_stage_without_redeclaring_it_warns():
    graph = graph_of(
        "ARG V=1\nFROM busybox:$V AS base\nWORKDIR /opt/$V\nARG V\nENV W=$V\n"
        "FROM base\nLABEL v=$V\n"
    )
    assert [(w.line, w.rule) for w in graph.warnings] == [(3, "UndefinedVar")]
    assert 'add "ARG V" in this stage' in graph.warnings[0].message


def test_from_an_earlier_stage_any_case_and_a_later_name_is_an_image():
    graph = graph_of(
        "FROM later AS first\nFROM busybox AS Build\nFROM BUILD\nFROM scratch AS later\n"
    )
    assert graph.stages[0].base_stage is None
    assert graph.stages[0].dependencies == (Dependency("base", 1, image="later"),)
    assert graph.stages[2].base_stage == 1
    assert graph.stages[3].dependencies == ()  # scratch needs nothing
    assert labels(graph, graph.order) == ["later"]


def test_copy_from_index_and_from_image():
    graph = graph_of(
        "FROM busybox\nFROM alpine\nCOPY --from=0 /a /a\n"
        "COPY --from=nginx:1.25 /etc/nginx /etc/nginx\n"
    )
    assert graph.stages[1].dependencies == (
        Dependency("base", 2, image="alpine"),
        Dependency("copy", 3, stage=0),
        Dependency("copy", 4, image="nginx:1.25"),
    )
    assert [labels(graph, level) for level in graph.levels] == [["stage-0"], ["stage-1"]]


def test_run_mount_may_use_a_later_stage():
    graph = graph_of(
        "FROM busybox AS one\nRUN --mount=from=two,target=/t --mount=type=cache,"
        "from=alpine,target=/c true\nFROM alpine AS two\n",
        target="one",
    )
    assert graph.stages[0].dependencies == (
        Dependency("base", 1, image="busybox"),
        Dependency("mount", 2, stage=1),
        Dependency("mount", 2, image="alpine"),
    )
    assert labels(graph, graph.order) == ["two", "one"]
    assert [labels(graph, level) for level in graph.levels] == [["two"], ["one"]]


def test_onbuild_triggers_of_a_base_stage_add_dependencies():
    graph = graph_of(
        "FROM busybox AS assets\nFROM busybox AS parent\n"
        "ONBUILD COPY --from=assets /a /a\nFROM parent\nFROM parent AS other\n",
        target="other",
    )
    other = graph.stages[3]
    assert [t.keyword for t in other.triggers] == ["COPY"]
    assert Dependency("copy", 3, stage=0) in other.dependencies
    assert labels(graph, graph.order) == ["assets", "parent", "other"]


def test_diamond_levels_and_order():
    graph = graph_of(
        "FROM busybox AS base\n"
        "FROM base AS left\n"
        "FROM base AS right\n"
        "FROM busybox AS unused\n"
        "FROM scratch AS out\nCOPY --from=left / /l\nCOPY --from=right / /r\n"
    )
    assert labels(graph, graph.order) == ["base", "left", "right", "out"]
    assert [labels(graph, level) for level in graph.levels] == [
        ["base"],
        ["left", "right"],
        ["out"],
    ]
    assert labels(graph, graph.skipped) == ["unused"]


def test_cycle_is_found_even_outside_the_target():
    with pytest.raises(DockerfileError) as caught:
        graph_of(
            "FROM busybox AS a\nRUN --mount=from=b,target=/b true\n"
            "FROM busybox AS b\nRUN --mount=from=a,target=/a true\nFROM scratch AS c\n",
            target="c",
        )
    assert caught.value.reason == "circular dependency detected on stage: a"
    assert caught.value.line == 4


def test_single_stage():
    graph = graph_of("FROM centos:latest\nRUN yum -y install httpd\n")
    assert graph.order == (0,) and graph.levels == ((0,),) and graph.skipped == ()
    assert graph.stages[0].label == "stage-0"


def test_every_real_world_dockerfile_makes_a_graph(shared_dir):
    from pybuild.builder.plan import render_dot, render_text

    files = sorted((shared_dir / "conformance" / "real-world").rglob("Dockerfile"))
    assert len(files) >= 100
    multi = 0
    for path in files:
        graph = build_graph(parse(path.read_bytes()), auto_args=AUTO)
        assert graph.order and graph.order[-1] == graph.target, path
        assert render_text(graph) and render_dot(graph)
        multi += len(graph.stages) > 1
        assert not [w for w in graph.warnings if w.rule.startswith("Undefined")], path
    assert multi > 0  # tomcat's images are multi-stage


def test_auto_args_are_kept_and_can_be_overridden():
    graph = graph_of("FROM alpine:$TARGETARCH\n", build_args={"TARGETARCH": "riscv64"})
    assert graph.stages[0].base == "alpine:riscv64"
    assert dict(graph.auto_args)["TARGETARCH"] == "riscv64"
    assert dict(graph.auto_args)["BUILDPLATFORM"] == "linux/amd64"


def test_onbuild_trigger_text_is_the_expression():
    from pybuild.builder.plan import render_text

    graph = graph_of("FROM busybox AS parent\nONBUILD RUN echo hi\nFROM parent AS child\n")
    (trigger,) = graph.stages[1].triggers
    assert (trigger.keyword, trigger.original, trigger.line) == ("RUN", "RUN echo hi", 2)
    assert "Dockerfile:2  RUN echo hi  (ONBUILD trigger from parent)" in render_text(graph)


def _random_dockerfile(draw_edges):
    """Stages s0..sN-1; each may start FROM an earlier stage, COPY --from earlier stages and
    mount any stage; returns (text, edges) where edges[i] is the set of stages i needs."""
    lines, edges = [], []
    for i, (base, copies, mounts) in enumerate(draw_edges):
        need = set()
        if base is not None and base < i:
            lines.append(f"FROM s{base} AS s{i}")
            need.add(base)
        else:
            lines.append(f"FROM busybox AS s{i}")
        for c in copies:
            if c < i:
                lines.append(f"COPY --from=s{c} /a /a{c}")
                need.add(c)
        for m in mounts:
            lines.append(f"RUN --mount=from=s{m},target=/m{m} true")
            need.add(m)
        edges.append(need)
    return "\n".join(lines) + "\n", edges


def _has_cycle(edges):
    state = {}

    def visit(i):
        state[i] = 1
        for j in edges[i]:
            if state.get(j) == 1 or (j not in state and visit(j)):
                return True
        state[i] = 2
        return False

    return any(i not in state and visit(i) for i in range(len(edges)))


def test_order_and_levels_respect_every_dependency():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    stage = st.tuples(
        st.one_of(st.none(), st.integers(0, 7)),
        st.lists(st.integers(0, 7), max_size=3),
        st.lists(st.integers(0, 7), max_size=2),
    )

    @settings(max_examples=150, deadline=None)
    @given(st.lists(stage, min_size=1, max_size=8), st.data())
    def check(stages, data):
        stages = [(b, c, [m for m in ms if m < len(stages)]) for b, c, ms in stages]
        text, edges = _random_dockerfile(stages)
        target = data.draw(st.integers(0, len(stages) - 1))
        if _has_cycle(edges):
            with pytest.raises(DockerfileError, match="circular dependency detected"):
                graph_of(text, target=f"s{target}")
            return
        graph = graph_of(text, target=f"s{target}")
        needed, todo = set(), [target]
        while todo:
            i = todo.pop()
            if i not in needed:
                needed.add(i)
                todo.extend(edges[i])
        assert set(graph.order) == needed and graph.order[-1] == target
        position = {s: n for n, s in enumerate(graph.order)}
        level_of = {s: n for n, level in enumerate(graph.levels) for s in level}
        assert sorted(level_of) == sorted(needed)
        for s in needed:
            assert set(graph.stages[s].stage_dependencies) == edges[s]
            for d in edges[s]:
                assert position[d] < position[s]
                assert level_of[d] < level_of[s]
            if edges[s]:  # a stage sits right after its deepest dependency
                assert level_of[s] == 1 + max(level_of[d] for d in edges[s])
            else:
                assert level_of[s] == 0

    check()
