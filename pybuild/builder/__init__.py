"""Syntax tree -> typed instructions -> stages -> build graph -> image."""

from pybuild.builder.convert import type_dockerfile
from pybuild.builder.graph import BuildGraph, Dependency, Stage, build_graph
from pybuild.builder.instructions import Command
from pybuild.builder.plan import render_dot, render_text

__all__ = [
    "BuildGraph",
    "Command",
    "Dependency",
    "Stage",
    "build_graph",
    "render_dot",
    "render_text",
    "type_dockerfile",
]
