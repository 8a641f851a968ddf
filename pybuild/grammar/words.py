"""Variable expansion and quote removal for Dockerfile words, with BuildKit's rules.

Follows moby/buildkit frontend/dockerfile/shell/lex.go (ProcessWord, ProcessWords,
ProcessWordWithMatches) character for character, including its quirks: `$$` and the other
special parameters expand to "" (they are never set), a lone `$` stays literal, default
words may nest expansions and quotes, `#`/`%`/`/` patterns keep their escapes.

Why a hand-written scanner rather than regex substitution (STYLE.md's Charliecloud note):
expansion is not regular. `${A:-${B:-"x}y"}}` nests, quotes change the meaning of `$`
and of the escape character, the escape character itself is a parser directive (`\\` or
a backtick), and word splitting must know which characters came from quotes. A one-pass
scanner that recurses on `${` is the only faithful shape, and it is BuildKit's own.

Where expansion applies is a property of the instruction: `expands`, `expands_flags` and
`expanded_flags` (from expansion.py, re-exported here). Patterns are shellpattern.py's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pybuild.errors import DockerfileError, PybuildError
from pybuild.grammar import shellpattern
from pybuild.grammar.expansion import expanded_flags, expands, expands_flags
from pybuild.grammar.gocompat import GO_SPACE, quote

__all__ = [
    "Expansion",
    "ExpansionError",
    "expand",
    "expand_words",
    "expand_with_matches",
    "expands",
    "expanded_flags",
    "expands_flags",
    "process",
]


class ExpansionError(PybuildError):
    """A word that cannot be expanded: bad substitution, missing `}`, `${X:?msg}`, ...

    `reason` is the bare cause (`X: msg`), `word` the word as written. The instructions
    layer wraps this into a DockerfileError carrying the file and line.
    """

    def __init__(self, reason: str, word: str):
        self.reason = reason
        self.word = word
        super().__init__(f"failed to process {quote(word)}: {reason}")

    def located(self, path: str, line: int | None) -> DockerfileError:
        """The same failure as a DockerfileError at `path:line`, for the caller to raise."""
        error = DockerfileError(self.message, path=path, line=line)
        error.__cause__ = self
        return error


@dataclass(frozen=True)
class Expansion:
    """One processed word: the joined result, its split words, and the names it used."""

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]  # names looked up and found in env (BuildKit's Matched)
    unmatched: frozenset[str]  # names looked up but unset (for "undefined variable" lints)


def process(word: str, env: Mapping[str, str], escape: str = "\\") -> Expansion:
    """Expand `word` once, returning everything BuildKit's ProcessWordWithMatches does."""
    if escape not in ("\\", "`"):
        raise ValueError(f"escape must be '\\' or '`', not {escape!r}")
    if not _SPECIAL.search(word) and escape not in word:
        # Nothing to expand or unquote (most words): the answer is the word, split.
        plain = tuple(w for w in _SPACE_RUN.split(word) if w)
        return Expansion(word, plain, frozenset(), frozenset())
    scan = _Scanner(word, env, escape)
    try:
        result, words = scan.until(_EOF, raw_escapes=False)
    except _SyntaxFault as fault:
        raise ExpansionError(fault.reason, word) from None
    except RecursionError:
        # Go's growable stacks have no such limit; hundreds of nested ${...:-${...}}
        # are no real Dockerfile, so refusing them is the honest answer.
        raise ExpansionError("expansions nested too deeply", word) from None
    return Expansion(
        result, tuple(words), frozenset(scan.matched), frozenset(scan.unmatched - scan.matched)
    )


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """BuildKit ProcessWord: expansion and quote removal, one string."""
    return process(word, env, escape).result


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """BuildKit ProcessWords: expand, then split on unquoted white space."""
    return list(process(word, env, escape).words)


def expand_with_matches(
    word: str, env: Mapping[str, str], escape: str = "\\"
) -> tuple[str, frozenset[str]]:
    """Expand, and name the env variables the word referenced and found (cache key input)."""
    done = process(word, env, escape)
    return done.result, done.matched


# --- the scanner -------------------------------------------------------------------------

_EOF = ""  # what peek()/next() return past the end; never a real character
_SPECIAL_PARAMS = frozenset("@*#?-$!0")  # POSIX special parameters: one char, never set
_OPERATORS = frozenset("+-?#%")
# BuildKit splits words on exactly Go's unicode.IsSpace characters.
_GO_SPACE = GO_SPACE


_SPECIAL = re.compile("[$'\"\ufeff]")  # what sends a word through the scanner
_SPACE_RUN = re.compile("[" + re.escape("".join(sorted(GO_SPACE))) + "]+")


class _SyntaxFault(Exception):
    """Internal: carries BuildKit's error text up to `process`, which adds the word."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _is_letter(ch: str) -> bool:
    return ch.isalpha()  # Go unicode.IsLetter: categories L*; same as str.isalpha per char


def _is_digit(ch: str) -> bool:
    return ch.isdecimal()  # Go unicode.IsDigit: category Nd; same as str.isdecimal per char


class _Words:
    """BuildKit's wordsStruct: splits on unquoted white space as characters arrive."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACE:
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def finish(self) -> list[str]:
        if self.word:  # an empty quoted "" never becomes a word, as in BuildKit
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scanner:
    """One pass over one word; recursion on `${` shares the position, as lex.go does."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str):
        self.text = text
        # Go's text/scanner silently drops a byte-order mark at the very start.
        self.pos = 1 if text.startswith("\ufeff") else 0
        self.env = env
        self.escape = escape
        self.raw_escapes = False
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        self.pos += 1
        return self.text[self.pos - 1]

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """processStopOn: scan to `stop` (consumed) or to the end when stop is _EOF."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved

    def _until(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while (ch := self.peek()) != _EOF:
            if stop != _EOF and ch == stop:
                self.next()
                return "".join(result), words.finish()
            if ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)  # expanded text is split on its spaces
                continue
            if ch == "'" or ch == '"':
                text = self.single_quoted() if ch == "'" else self.double_quoted()
                result.append(text)
                words.add_raw_string(text)  # quoted text stays in one word
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = self.next()
                if ch == _EOF:  # a trailing escape character vanishes
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop != _EOF:
            raise _SyntaxFault(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def single_quoted(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _SyntaxFault(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        # Literal except `$`, and the escape character before `"`, `$` or itself.
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise _SyntaxFault(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        """A name: letters, digits, `_`; or a run of digits; or one special parameter."""
        out: list[str] = []
        while (ch := self.peek()) != _EOF:
            if not out and _is_digit(ch):
                while self.peek() != _EOF and _is_digit(self.peek()):
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"  # `$.`, `$ `, trailing `$`: kept literally
            return self.lookup(name)[0]
        self.next()  # the {
        first = self.peek()
        if first == _EOF:
            raise _SyntaxFault("syntax error: missing '}'")
        if first in ("{", "}", ":"):
            raise _SyntaxFault("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op == "}":
            return self.lookup(name)[0]
        if op == "/":
            return self.substitute(name)
        if op == _EOF:
            # lex.go says "unsupported modifier (\ufffd)" here; same failure, clearer text.
            raise _SyntaxFault("syntax error: missing '}'")
        modifier = op
        null_is_unset = False
        if op == ":":
            null_is_unset = True
            op = self.next()
            modifier += op
        elif op not in _OPERATORS:
            raise _SyntaxFault(f"unsupported modifier ({modifier}) in substitution")
        # Like lex.go, `:` followed by anything reads the word first and only then
        # complains, so `${X:=y}` fails on the modifier, `${X:=y` on the missing brace.
        word = self.until_brace(raw_escapes=op in ("#", "%"))
        value, is_set = self.lookup(name)
        empty = not is_set or (null_is_unset and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if not is_set:
                raise _SyntaxFault(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _SyntaxFault(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if op in ("#", "%"):
            # One operator character: shortest match; doubled: longest. As in lex.go the
            # doubling is looked for after expansion of the pattern word.
            greedy = word.startswith(op)
            if greedy:
                word = word[1:]
            trim = shellpattern.trim_suffix if op == "%" else shellpattern.trim_prefix
            try:
                return trim(word, value, greedy)
            except shellpattern.PatternError as bad:
                raise _SyntaxFault(str(bad)) from None
        raise _SyntaxFault(f"unsupported modifier ({modifier}) in substitution")

    def until_brace(self, raw_escapes: bool) -> str:
        try:
            return self.until("}", raw_escapes)[0]
        except _SyntaxFault:
            if self.peek() == _EOF:
                raise _SyntaxFault("syntax error: missing '}'") from None
            raise

    def substitute(self, name: str) -> str:
        """`${name/pattern/replacement}` and `${name//pattern/replacement}`."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern = self.until("/", raw_escapes=True)[0]
        except _SyntaxFault:
            if self.peek() == _EOF:
                raise _SyntaxFault("syntax error: missing '/' in ${}") from None
            raise
        replacement = self.until_brace(raw_escapes=True)
        value = self.lookup(name)[0]
        try:
            return shellpattern.replace(pattern, value, replacement, replace_all)
        except shellpattern.PatternError as bad:
            raise _SyntaxFault(str(bad)) from None
