"""Speed of variable expansion and .dockerignore matching, beside Python peers.

Peers: dockerfile-parse's WordSplitter (expansion + word splitting; a test dependency)
and docker-py's PatternMatcher (a Python port of Docker's matcher; used only if
installed). Prints times per call and the ratio pybuild/peer (below 1 = pybuild faster).
The peers are not exact: WordSplitter mis-handles `${X:-w}` modifiers, docker-py matches
each path against its parents differently; the figures compare work, not answers.

    .venv/bin/python bench/bench_grammar_words.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pybuild.grammar.ignore import IgnoreRules  # noqa: E402
from pybuild.grammar.words import expand_words  # noqa: E402

WORDS = [
    "/usr/local/bin",
    "$HOME/app",
    "${VERSION}-${TARGETARCH}",
    '"quoted words" stay together',
    "${MISSING:-default} ${HOME:+set}",
    "app-${VERSION}.tar.gz",
    "a\\ b c",
    "'$literal'",
]
ENV = {"HOME": "/root", "VERSION": "1.2.3", "TARGETARCH": "amd64"}

IGNORE = """
# typical project
.git
node_modules
**/*.pyc
**/__pycache__
*.md
!README.md
build/
dist/**
.venv
*.log
tmp?
"""
PATHS = [
    f"{top}/{mid}/{leaf}"
    for top in ("src", "node_modules", "docs", "build", "pkg")
    for mid in ("a", "b/c", "__pycache__", "d/e/f")
    for leaf in ("main.py", "x.pyc", "README.md", "notes.md", "app.log", "tmp1")
]


def per_call(fn, calls: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=5)) / calls


def bench_words() -> None:
    from dockerfile_parse.util import WordSplitter

    ours = per_call(lambda: [expand_words(w, ENV) for w in WORDS], len(WORDS))
    peer = per_call(lambda: [list(WordSplitter(w, args=ENV).split()) for w in WORDS], len(WORDS))
    print(f"expand_words          {ours * 1e6:8.2f} us/word")
    print(f"dockerfile-parse      {peer * 1e6:8.2f} us/word   ratio {ours / peer:.2f}")


def bench_ignore() -> None:
    parse = per_call(lambda: IgnoreRules.from_text(IGNORE), 1)
    rules = IgnoreRules.from_text(IGNORE)
    ours = per_call(lambda: [rules.ignored(p) for p in PATHS], len(PATHS))
    print(f"ignore parse          {parse * 1e6:8.2f} us/file ({len(rules.patterns)} patterns)")
    print(f"IgnoreRules.ignored   {ours * 1e6:8.2f} us/path")
    try:
        from docker.utils.build import PatternMatcher
    except ImportError:
        print("docker-py not installed: no peer for .dockerignore matching")
        return
    lines = [line for line in IGNORE.splitlines() if line and not line.startswith("#")]
    matcher = PatternMatcher(lines)
    peer = per_call(lambda: [matcher.matches(p) for p in PATHS], len(PATHS))
    print(f"docker-py matches     {peer * 1e6:8.2f} us/path   ratio {ours / peer:.2f}")


if __name__ == "__main__":
    bench_words()
    bench_ignore()
