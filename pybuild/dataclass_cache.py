"""Bytecode cache for the methods @dataclass writes, so start-up does not compile them again.

Why: on Python 3.11 @dataclass makes each method (__init__, __repr__, __eq__, __hash__,
frozen __setattr__/__delattr__) by compiling a source string with exec(); a frozen dataclass
costs about 0.8 ms, almost all of it compile(). A fully cached `pybuild` rebuild creates
some 75 of our dataclasses: two fifths of its CPU time went there. Module bytecode is
cached in __pycache__; these strings were not. Now they are, the same way: per module, in
the module's __pycache__, as marshalled code objects keyed by the exact source text.

Behaviour is unchanged: the text is built by dataclasses itself (unchanged), compiled as
exec() would (no inherited __future__ flags, filename "<string>") and run with the same
globals and locals. Only our own modules' dataclasses use the cache. A new or edited class
is a miss (compiled as before) and the module's file is rewritten at exit with the texts
this process used; like .pyc files, nothing is written under PYTHONDONTWRITEBYTECODE or
where the package is read-only. Only Python 3.11's dataclasses is patched (3.12 changed
this function; 3.13 compiles one string per class): elsewhere install() does nothing."""

from __future__ import annotations

import atexit
import marshal
import os
import sys
import threading

_PREFIX = "pybuild."
_lock = threading.Lock()
_loaded: dict[str, dict[str, object]] = {}  # module -> {source text: code}
_used: dict[str, dict[str, object]] = {}  # module -> the texts this process used
_missed: set[str] = set()  # modules whose file needs rewriting
_installed = False


def _cache_path(module: str) -> str | None:
    mod = sys.modules.get(module)
    origin = getattr(mod, "__file__", None)
    if not origin:
        return None
    directory = os.path.join(os.path.dirname(origin), "__pycache__")
    name = os.path.basename(origin).rpartition(".")[0]
    return os.path.join(directory, f"{name}.{sys.implementation.cache_tag}.dataclasses")


def _codes(module: str) -> dict[str, object]:
    codes = _loaded.get(module)
    if codes is None:
        codes = {}
        path = _cache_path(module)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    data = marshal.loads(f.read())
                if isinstance(data, dict):
                    codes = data
            except (OSError, ValueError, EOFError, TypeError):
                pass  # missing or damaged: compile as usual and rewrite it
        _loaded[module] = codes
    return codes


def _compiled(module: str, txt: str):
    with _lock:
        codes = _codes(module)
        code = codes.get(txt)
        if code is None:
            # what exec(txt) does in dataclasses, which has no __future__ imports
            code = compile(txt, "<string>", "exec", dont_inherit=True)
            codes[txt] = code
            _missed.add(module)
        _used.setdefault(module, {})[txt] = code
        return code


def _save() -> None:
    if sys.dont_write_bytecode:
        return
    for module in sorted(_missed):
        path = _cache_path(module)
        if path is None:
            continue
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(marshal.dumps(_used[module]))
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def install() -> None:
    """Route our modules' dataclass method compiles through the cache (Python 3.11 only)."""
    global _installed
    if _installed or sys.version_info[:2] != (3, 11):
        return
    import dataclasses

    original = dataclasses._create_fn
    if original.__code__.co_varnames[:3] != ("name", "args", "body"):
        return
    missing = dataclasses.MISSING

    # The body of dataclasses._create_fn (3.11), with compile() looked up in the cache.
    def _create_fn(name, args, body, *, globals=None, locals=None, return_type=missing):
        module = globals.get("__name__") if isinstance(globals, dict) else None
        if not (isinstance(module, str) and module.startswith(_PREFIX)):
            return original(name, args, body, globals=globals, locals=locals,
                            return_type=return_type)
        if locals is None:
            locals = {}
        return_annotation = ""
        if return_type is not missing:
            locals["_return_type"] = return_type
            return_annotation = "->_return_type"
        args = ",".join(args)
        body = "\n".join(f"  {b}" for b in body)
        txt = f" def {name}({args}){return_annotation}:\n{body}"
        local_vars = ", ".join(locals.keys())
        txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
        ns: dict = {}
        exec(_compiled(module, txt), globals, ns)
        return ns["__create_fn__"](**locals)

    dataclasses._create_fn = _create_fn
    atexit.register(_save)
    _installed = True


def prime() -> int:
    """Fill every module's cache now, whatever PYTHONDONTWRITEBYTECODE says (as compileall
    writes .pyc files): import all of pybuild, then write. Returns the modules written."""
    import importlib
    import pkgutil

    import pybuild

    install()
    for info in pkgutil.walk_packages(pybuild.__path__, _PREFIX):
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a module this host cannot load: nothing to cache
            continue
    count = len(_missed)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    try:
        _save()
        _missed.clear()
    finally:
        sys.dont_write_bytecode = saved
    return count
