"""`--plan` rendering: golden text and DOT for every fixture Dockerfile.

Set PYBUILD_REGEN_GOLDEN=1 to rewrite the golden files after an intended change (and read
the diff before committing it)."""

import os
import pathlib

import pytest

from pybuild.builder.convert import type_dockerfile
from pybuild.builder.graph import build_graph
from pybuild.builder.plan import render_dot, render_text, step_text
from pybuild.grammar import parse

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "dockerfiles"
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "plan"
AUTO = {"BUILDPLATFORM": "linux/amd64", "TARGETPLATFORM": "linux/amd64"}
CASES = [(p.name, None) for p in sorted(FIXTURES.iterdir()) if (p / "Dockerfile").exists()]
CASES.append(("multi-stage", "test"))


def plan_of(name, target, render):
    dockerfile = FIXTURES / name / "Dockerfile"
    graph = build_graph(parse(dockerfile.read_bytes()), target=target, auto_args=AUTO)
    return render(graph, str(dockerfile.relative_to(REPO)))


def check_golden(filename, actual):
    path = GOLDEN / filename
    if os.environ.get("PYBUILD_REGEN_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text()


def test_every_fixture_has_a_golden_plan():
    assert {name for name, _ in CASES} >= {
        "centos-net-http",
        "busybox-net-http",
        "multi-stage",
        "heredoc",
    }


@pytest.mark.parametrize(("name", "target"), CASES)
def test_plan_text_golden(name, target):
    suffix = f"-target-{target}" if target else ""
    check_golden(f"{name}{suffix}.txt", plan_of(name, target, render_text))


@pytest.mark.parametrize(("name", "target"), CASES)
def test_plan_dot_golden(name, target):
    suffix = f"-target-{target}" if target else ""
    dot = plan_of(name, target, render_dot)
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    check_golden(f"{name}{suffix}.dot", dot)


def test_step_text_folds_and_cuts_long_lines():
    typed = type_dockerfile(parse("FROM busybox\nRUN echo " + "x" * 200 + "\n"))
    (run,) = typed.stages[0].commands
    text = step_text(run)
    assert len(text) == 100 and text.endswith("...")


def test_dot_escapes_quotes_and_backslashes():
    graph = build_graph(parse('FROM busybox\nRUN echo "a\\\\b"\n'), auto_args=AUTO)
    dot = render_dot(graph)
    assert 'RUN echo \\"a\\\\\\\\b\\"\\l' in dot


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's use of old pyparsing names
@pytest.mark.parametrize(("name", "target"), CASES)
def test_plan_dot_is_valid_graphviz_with_the_graphs_edges(name, target):
    pydot = pytest.importorskip("pydot")
    dockerfile = FIXTURES / name / "Dockerfile"
    graph = build_graph(parse(dockerfile.read_bytes()), target=target, auto_args=AUTO)
    (dot,) = pydot.graph_from_dot_data(render_dot(graph))
    nodes = {n.get_name() for n in dot.get_nodes()} - {"node", "edge"}
    images = {d.image for s in graph.stages for d in s.dependencies if d.image}
    assert nodes == {f"s{s.index}" for s in graph.stages} | {f"i{n}" for n in range(len(images))}
    edges = sorted((e.get_source(), e.get_destination()) for e in dot.get_edges())
    expected = []
    for stage in graph.stages:
        for dep in stage.dependencies:
            if dep.stage is not None:
                expected.append((f"s{dep.stage}", f"s{stage.index}"))
            else:
                label = next(n for n in dot.get_nodes() if n.get_label() == f'"{dep.image}"')
                expected.append((label.get_name(), f"s{stage.index}"))
    assert edges == sorted(expected)
