"""Dockerfile text -> syntax tree: directives, continuations, heredocs, words, .dockerignore."""

from pybuild.grammar.parser import Dockerfile, Heredoc, Instruction, dump, parse

__all__ = ["Dockerfile", "Heredoc", "Instruction", "dump", "parse"]
