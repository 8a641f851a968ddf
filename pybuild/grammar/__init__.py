"""Dockerfile text -> syntax tree: directives, continuations, heredocs, words, .dockerignore.

The parser's names load on first use (PEP 562): a cached build needs words and ignore
rules but not the parser, its node classes and their regexes."""

from __future__ import annotations

_EXPORTS = ("Dockerfile", "Heredoc", "Instruction", "dump", "parse")

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pybuild.grammar import parser

    value = getattr(parser, name)
    globals()[name] = value  # once: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
