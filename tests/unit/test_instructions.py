"""Typed instructions: every validation error BuildKit gives, with its message and line."""

import pytest

from pybuild.builder.convert import type_dockerfile
from pybuild.builder.graph import build_graph
from pybuild.builder.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Env,
    From,
    Healthcheck,
    Onbuild,
    Run,
    Shell,
)
from pybuild.errors import DockerfileError
from pybuild.grammar import parse

AUTO = {"BUILDPLATFORM": "linux/amd64", "TARGETPLATFORM": "linux/amd64"}


def graph_of(text, **kw):
    return build_graph(parse(text), auto_args=AUTO, **kw)


def error_of(text, **kw):
    with pytest.raises(DockerfileError) as caught:
        graph_of(text, **kw)
    return caught.value


# (Dockerfile, line of the error, message) -- messages as BuildKit words them
ERRORS = [
    ("FROM busybox\nRUNN echo hi\n", 2, "unknown instruction: RUNN (did you mean RUN?)"),
    ("FROM busybox\nCOPPY a b\n", 2, "unknown instruction: COPPY (did you mean COPY?)"),
    ("FROM busybox\nFOO bar\n", 2, "unknown instruction: FOO (did you mean FROM?)"),
    ("FROM busybox\nXYZZY bar\n", 2, "unknown instruction: XYZZY"),
    ("RUN echo hi\nFROM busybox\n", 1, "no build stage in current context"),
    ("ARG A=1\n\nENV B=2\nFROM busybox\n", 3, "no build stage in current context"),
    ("ARG A=1\nARG B\n", None, "dockerfile contains no stages to build"),
    ("FROM busybox\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM busybox\nLABEL\n", 2, "LABEL requires at least one argument"),
    ("FROM busybox\nENV =x\n", 2, "ENV names can not be blank"),
    ("FROM busybox\nLABEL =x\n", 2, "LABEL names can not be blank"),
    ("FROM busybox\nLABEL version\n", 2, "LABEL must have two arguments"),
    ("ARG A=${B:?missing}\nFROM busybox\n", 1, 'failed to process "${B:?missing}": B: missing'),
    # flags, per instruction
    ("FROM busybox\nRUN --foo echo\n", 2, "unknown flag: --foo"),
    (
        "FROM busybox\nRUN --mont=type=cache,target=/c true\n",
        2,
        "unknown flag: --mont (did you mean mount?)",
    ),
    ("FROM busybox\nCOPY --from=a --from=b x /y\n", 2, "duplicate flag specified: --from"),
    ("FROM busybox\nCOPY --chown x /y\n", 2, "missing a value on flag: --chown"),
    ("FROM busybox\nCOPY --link= x /y\n", 2, "missing a value on flag: --link"),
    (
        "FROM busybox\nCOPY --link=maybe x /y\n",
        2,
        "expecting boolean value for flag --link, not: maybe",
    ),
    ("FROM busybox\nCOPY --link --link=false x /y\n", 2, "duplicate flag specified: --link"),
    ("FROM busybox\nCOPY --checksum=sha256:00 x /y\n", 2, "unknown flag: --checksum"),
    ("FROM busybox\nCOPY --keep-git-dir x /y\n", 2, "unknown flag: --keep-git-dir"),
    ("FROM busybox\nADD --parents x /y\n", 2, "unknown flag: --parents"),
    ("FROM busybox\nADD --from=a x /y\n", 2, "unknown flag: --from"),
    ("FROM busybox\nADD --chmod=644 --chmod=600 x /y\n", 2, "duplicate flag specified: --chmod"),
    ("FROM busybox\nRUN --network=bridge true\n", 2, 'invalid network mode "bridge"'),
    ("FROM busybox\nRUN --security=open true\n", 2, 'security "open" is not valid'),
    (
        "FROM busybox\nRUN --network=host --network=none true\n",
        2,
        "duplicate flag specified: --network",
    ),
    ("FROM --plaform=linux/amd64 busybox\n", 1, "unknown flag: --plaform (did you mean platform?)"),
    ("FROM --platform=a --platform=b busybox\n", 1, "duplicate flag specified: --platform"),
    ("FROM busybox\nCMD --foo echo\n", 2, "unknown flag: --foo"),
    ("FROM busybox\nENV --x=1 A=b\n", 2, "unknown flag: --x"),
    ("FROM busybox\nWORKDIR --parents /a\n", 2, "unknown flag: --parents"),
    # RUN --mount
    ("FROM busybox\nRUN --mount=type=foo,target=/t true\n", 2, 'unsupported mount type "foo"'),
    (
        "FROM busybox\nRUN --mount=type=cach,target=/t true\n",
        2,
        'unsupported mount type "cach" (did you mean cache?)',
    ),
    (
        "FROM busybox\nRUN --mount=target true\n",
        2,
        "invalid field 'target' must be a key=value pair",
    ),
    (
        "FROM busybox\nRUN --mount=typo=bind,target=/t true\n",
        2,
        "unexpected key 'typo' in 'typo=bind' (did you mean type?)",
    ),
    (
        "FROM busybox\nRUN --mount=from=$STAGE,target=/t true\n",
        2,
        "'from' doesn't support variable expansion, define alias stage instead",
    ),
    (
        "FROM busybox\nRUN --mount=type=bind,mode=0700,target=/t true\n",
        2,
        'mode not allowed for "bind" type mounts',
    ),
    (
        "FROM busybox\nRUN --mount=type=cache,uid=abc,target=/t true\n",
        2,
        "invalid value abc for uid",
    ),
    (
        "FROM busybox\nRUN --mount=type=tmpfs,sharing=locked,target=/t true\n",
        2,
        "invalid cache sharing set for tmpfs mount",
    ),
    (
        "FROM busybox\nRUN --mount=type=cache,sharing=never,target=/t true\n",
        2,
        'unsupported sharing value "never"',
    ),
    (
        "FROM busybox\nRUN --mount=type=secret true\n",
        2,
        "invalid secret mount. one of source, target required",
    ),
    (
        "FROM busybox\nRUN --mount=type=secret,id=a,source=b true\n",
        2,
        "both source and id can't be set",
    ),
    (
        "FROM busybox\nRUN --mount=type=bind,required,target=/t true\n",
        2,
        "unexpected key 'required' for mount type 'bind'",
    ),
    (
        "FROM busybox\nRUN --mount=type=bind,ro=maybe,target=/t true\n",
        2,
        "invalid value for ro: maybe",
    ),
    # HEALTHCHECK
    ("FROM busybox\nHEALTHCHECK\n", 2, "HEALTHCHECK requires at least one argument"),
    ("FROM busybox\nHEALTHCHECK NONE now\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM busybox\nHEALTHCHECK --interval=5s NONE\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM busybox\nHEALTHCHECK PING x\n", 2, 'Unknown type "PING" in HEALTHCHECK (try CMD)'),
    ("FROM busybox\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM busybox\nHEALTHCHECK --interval=abc CMD true\n", 2, 'time: invalid duration "abc"'),
    (
        "FROM busybox\nHEALTHCHECK --interval=10 CMD true\n",
        2,
        'time: missing unit in duration "10"',
    ),
    (
        "FROM busybox\nHEALTHCHECK --timeout=3d CMD true\n",
        2,
        'time: unknown unit "d" in duration "3d"',
    ),
    (
        "FROM busybox\nHEALTHCHECK --timeout=100us CMD true\n",
        2,
        'Interval "timeout" cannot be less than 1ms',
    ),
    (
        "FROM busybox\nHEALTHCHECK --start-period=-1s CMD true\n",
        2,
        'Interval "start-period" cannot be less than 1ms',
    ),
    ("FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n", 2, "--retries cannot be negative (-1)"),
    (
        "FROM busybox\nHEALTHCHECK --retries=three CMD true\n",
        2,
        'strconv.ParseInt: parsing "three": invalid syntax',
    ),
    (
        "FROM busybox\nHEALTHCHECK --retries=9999999999 CMD true\n",
        2,
        'strconv.ParseInt: parsing "9999999999": value out of range',
    ),
    (
        "FROM busybox\nHEALTHCHECK --intervl=5s CMD true\n",
        2,
        "unknown flag: --intervl (did you mean interval?)",
    ),
    (
        "FROM busybox\nHEALTHCHECK --retries=1 --retries=2 CMD true\n",
        2,
        "duplicate flag specified: --retries",
    ),
    # JSON form where it is required, and argument counts
    ("FROM busybox\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nSHELL []\n", 2, "SHELL requires at least one argument"),
    (
        "FROM busybox\nCOPY onlyone\n",
        2,
        "COPY requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    (
        'FROM busybox\nADD ["onlyone"]\n',
        2,
        "ADD requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    ("FROM busybox\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM busybox\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM busybox\nMAINTAINER\n", 2, "MAINTAINER requires exactly one argument"),
    ("FROM busybox\nSTOPSIGNAL\n", 2, "STOPSIGNAL requires exactly one argument"),
    ("FROM busybox\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM busybox\nVOLUME\n", 2, "VOLUME requires at least one argument"),
    ('FROM busybox\nVOLUME ["/a", " "]\n', 2, "VOLUME specified can not be an empty string"),
    ("FROM busybox\nARG\n", 2, "ARG requires at least one argument"),
    ("FROM busybox\nARG =x\n", 2, "ARG names can not be blank"),
    ("FROM busybox\nONBUILD\n", 2, "ONBUILD requires at least one argument"),
    (
        "FROM busybox\nONBUILD ONBUILD RUN true\n",
        2,
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    ),
    ("FROM busybox\nONBUILD FROM alpine\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD MAINTAINER me\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
    # FROM and stages
    ("FROM busybox alpine\n", 1, "FROM requires either one or three arguments"),
    ("FROM busybox AS\n", 1, "FROM requires either one or three arguments"),
    (
        "FROM busybox AS 1st\n",
        1,
        'invalid name for build stage: "1st", name can\'t start with a number or contain symbols',
    ),
    (
        "FROM busybox AS we@rd\n",
        1,
        'invalid name for build stage: "we@rd", name can\'t start with a number or contain symbols',
    ),
    (
        "FROM busybox AS build\nRUN true\nFROM alpine AS Build\n",
        3,
        'duplicate stage name "build", stage names should be unique (first defined on line 1)',
    ),
    ("ARG IMAGE\nFROM $IMAGE\n", 2, "base name ($IMAGE) should not be blank"),
    (
        "FROM busybox AS one\nCOPY --from=two /x /y\nFROM alpine AS two\n",
        2,
        'cannot copy from stage "two", it needs to be defined before current stage "one"',
    ),
    (
        "FROM busybox AS one\nCOPY --from=ONE /x /y\n",
        2,
        'cannot copy from stage "one", it needs to be defined before current stage "one"',
    ),
    (
        "FROM busybox\nCOPY --from=0 /x /y\n",
        2,
        'cannot copy from stage "stage-0", it needs to be defined before current stage "stage-0"',
    ),
    ("FROM busybox\nFROM alpine\nCOPY --from=2 /x /y\n", 3, "invalid stage index 2"),
    ("FROM busybox\nFROM alpine\nCOPY --from=-1 /x /y\n", 3, "invalid stage index -1"),
    (
        "ARG S=base\nFROM busybox AS base\nFROM alpine\nCOPY --from=$S /x /y\n",
        4,
        "variable expansion is not supported for --from, define a new stage with FROM using ARG "
        "from global scope as a workaround",
    ),
    (
        "FROM busybox AS one\nRUN --mount=from=one,target=/t true\n",
        2,
        "circular dependency detected on stage: one",
    ),
    (
        "FROM busybox AS one\nRUN --mount=from=two,target=/t true\n"
        "FROM alpine AS two\nCOPY --from=one /x /y\n",
        4,
        "circular dependency detected on stage: one",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "message"), ERRORS, ids=[f"{i}-{m[:40]}" for i, (_, _, m) in enumerate(ERRORS)]
)
def test_validation_error(text, line, message):
    e = error_of(text)
    assert (e.reason, e.line) == (message, line)
    where = f"Dockerfile:{line}" if line is not None else "Dockerfile"
    assert str(e) == f"{where}: {message}"


def test_env_without_value_is_refused_at_its_line():
    e = error_of("FROM busybox\n\nENV PATH\n")
    assert e.line == 3
    assert "ENV must have two arguments" in e.reason


def test_non_string_json_is_refused_at_its_line():
    e = error_of('FROM busybox\nCMD ["echo", 1]\n')
    assert e.line == 2


def test_error_names_the_dockerfile_path():
    with pytest.raises(DockerfileError) as caught:
        build_graph(parse("FROM busybox\nRUNN x\n", path="dev.Dockerfile"))
    assert str(caught.value).startswith("dev.Dockerfile:2: unknown instruction: RUNN")


def test_bad_expansion_in_from_names_the_line():
    e = error_of("FROM busybox\nFROM ${IMAGE:?required}\n")
    assert e.line == 2
    assert "IMAGE: required" in e.reason


def test_instructions_keep_words_unexpanded_and_spans():
    typed = type_dockerfile(
        parse(
            "ARG V=1\n"
            "FROM --platform=$BUILDPLATFORM busybox:$V AS Build\n"
            "ENV A=$V \\\n    B=c\n"
            "COPY --from=x --chown=$U:$G --link --exclude=*.md --exclude=*.txt a b /d/\n"
            'RUN --mount=type=cache,target=/root/.cache,id=$ID --network=none ["make", "all"]\n'
            "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://x/\n"
            'SHELL ["/bin/bash", "-c"]\n'
            "ONBUILD RUN echo $V\n"
            "ADD --keep-git-dir=true --checksum=sha256:ab https://x/y.git /src\n"
            "CMD echo hi\n"
        )
    )
    assert [a.args[0].key for a in typed.global_args] == ["V"]
    stage = typed.stages[0]
    frm = stage.from_
    assert isinstance(frm, From)
    assert (frm.base, frm.stage_name, frm.platform, frm.line) == (
        "busybox:$V",
        "build",
        "$BUILDPLATFORM",
        2,
    )
    env, copy, run, health, shell, onbuild, add, cmd = stage.commands
    assert isinstance(env, Env) and (env.line, env.end_line) == (3, 4)
    assert env.pairs[0].key == "A" and env.pairs[0].value == "$V"
    assert isinstance(copy, Copy)
    assert (copy.from_stage, copy.chown, copy.link, copy.excludes) == (
        "x",
        "$U:$G",
        True,
        ("*.md", "*.txt"),
    )
    assert (copy.sources, copy.dest) == (("a", "b"), "/d/")
    assert isinstance(run, Run) and run.json and run.command == ("make", "all")
    assert run.network == "none" and run.security == "sandbox"
    (mount,) = run.mounts
    assert (mount.type, mount.target, mount.readonly, mount.deferred) == (
        "cache",
        "/root/.cache",
        False,
        ("id",),
    )
    assert isinstance(health, Healthcheck)
    assert health.test == ("CMD-SHELL", "curl -f http://x/")
    assert (health.interval, health.timeout, health.retries) == (90 * 10**9, 5 * 10**8, 3)
    assert isinstance(shell, Shell) and shell.shell == ("/bin/bash", "-c")
    assert isinstance(onbuild, Onbuild) and onbuild.expression == "RUN echo $V"
    assert isinstance(add, Add) and add.keep_git_dir and add.checksum == "sha256:ab"
    assert add.unpack is None
    assert isinstance(cmd, Cmd) and not cmd.json and cmd.command == ("echo hi",)


def test_healthcheck_forms():
    typed = type_dockerfile(
        parse(
            'FROM busybox\nHEALTHCHECK NONE\nHEALTHCHECK CMD ["wget", "-q", "x"]\n'
            "HEALTHCHECK --start-interval=0s --start-period=2s CMD true\n"
        )
    )
    none, exec_form, shell_form = typed.stages[0].commands
    assert none.test == ("NONE",)
    assert exec_form.test == ("CMD", "wget", "-q", "x")
    assert (shell_form.start_interval, shell_form.start_period) == (0, 2 * 10**9)


def test_heredocs_become_sources_and_run_scripts():
    typed = type_dockerfile(
        parse(
            "FROM busybox\n"
            "RUN <<EOF\necho one\nEOF\n"
            "COPY <<A <<'B' /dest/\nalpha $X\nA\nbeta\nB\n"
            "COPY --chmod=0755 <<-EOT /bin/x\n\t#!/bin/sh\n\tEOT\n"
        )
    )
    run, copy, tabbed = typed.stages[0].commands
    assert isinstance(run, Run) and [h.name for h in run.heredocs] == ["EOF"]
    assert (run.line, run.end_line) == (2, 4)
    assert copy.sources == () and copy.dest == "/dest/"
    assert [(c.name, c.data, c.expand) for c in copy.contents] == [
        ("A", "alpha $X\n", True),
        ("B", "beta\n", False),
    ]
    assert tabbed.chmod == "0755" and tabbed.contents[0].chomp


def test_arg_declarations():
    typed = type_dockerfile(parse('FROM busybox\nARG A B=2 C="x y"\n'))
    (arg,) = typed.stages[0].commands
    assert isinstance(arg, Arg)
    assert [(d.key, d.default) for d in arg.args] == [("A", None), ("B", "2"), ("C", '"x y"')]


def test_copy_flags_defaults_and_parents():
    typed = type_dockerfile(parse("FROM busybox\nCOPY --parents=true --link=false ./a/./b /d\n"))
    (copy,) = typed.stages[0].commands
    assert copy.parents and not copy.link and copy.from_stage is None


def test_maintainer_is_deprecated_with_a_warning():
    graph = graph_of("FROM busybox\nMAINTAINER me <me@example.com>\n")
    assert [(w.line, w.rule) for w in graph.warnings] == [(2, "MaintainerDeprecated")]
    assert str(graph.warnings[0]) == (
        "Dockerfile:2: MaintainerDeprecated: Maintainer instruction is deprecated in favor "
        "of using label"
    )


def test_legacy_env_form_warns():
    graph = graph_of("FROM busybox\nENV A b\nENV C=d\n")
    assert [(w.line, w.rule) for w in graph.warnings] == [(2, "LegacyKeyValueFormat")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nUSER --x\n", "USER requires exactly one argument"),
        (
            "FROM busybox\nCOPY --nope a\n",
            "COPY requires at least two arguments, but only one was "
            "provided. Destination could not be determined",
        ),
        (
            "FROM busybox\nRUN --network=bad --mount=type=weird,target=/t true\n",
            'unsupported mount type "weird"',
        ),
        ("FROM busybox AS 9 --nope\n", "FROM requires either one or three arguments"),
        (
            "FROM --nope busybox AS 9\n",
            'invalid name for build stage: "9", name can\'t start with a number or contain symbols',
        ),
    ],
)
def test_checks_run_in_buildkits_order(text, message):
    assert error_of(text).reason == message


def test_add_unpack_flag():
    typed = type_dockerfile(parse("FROM busybox\nADD --unpack=false a.tar.gz /x/\n"))
    assert typed.stages[0].commands[0].unpack is False
