"""cli/gotemplate.py: Go's text/template as Docker's --format uses it. Expected outputs are
what `docker inspect -f` / Go's text/template print for the same data."""

from __future__ import annotations

import pytest

from pybuild.cli.gotemplate import TemplateError, parse, render
from pybuild.cli.images_fmt import format_rows

DATA = {
    "Id": "abc123",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 42,
              "ExitCode": 0, "Health": None},
    "Config": {"Cmd": ["httpd", "-f"], "Entrypoint": None, "Env": [],
               "Labels": {"org.example.team": "web", "tier": "front"}},
    "NetworkSettings": {"Networks": {"net2": {"IPAddress": "10.1.0.5", "Aliases": ["a", "b"]},
                                     "net1": {"IPAddress": "10.0.0.5", "Aliases": None}}},
    "Ratio": 0.25, "Big": 1e6, "Int": 1234567,
}

CASES = [
    ("{{.Id}}", "abc123"),
    ("{{.Name}} {{.State.Status}} {{.State.Running}} {{.State.Paused}}", "/web running true false"),
    ("{{.Config.Cmd}}", "[httpd -f]"),
    ("{{json .Config.Cmd}}", '["httpd","-f"]'),
    ("{{json .State}}", '{"Status":"running","Running":true,"Paused":false,"Pid":42,'
                        '"ExitCode":0,"Health":null}'),
    ("{{.Config.Labels}}", "map[org.example.team:web tier:front]"),
    ('{{index .Config.Labels "org.example.team"}}', "web"),
    ("{{.Config.Labels.tier}}", "front"),
    ("{{.Config.Labels.nope}}", "<no value>"),
    ('{{index .Config.Labels "nope"}}', "<no value>"),
    # range over a map goes in key order; $k, $v
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.0.0.5 10.1.0.5 "),
    ("{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}",
     "net1=10.0.0.5;net2=10.1.0.5;"),
    ("{{range $i, $c := .Config.Cmd}}{{$i}}:{{$c}} {{end}}", "0:httpd 1:-f "),
    ("{{range .Config.Env}}x{{else}}empty{{end}}", "empty"),
    ("{{range .Config.Cmd}}{{if eq . \"-f\"}}{{break}}{{end}}{{.}}{{end}}", "httpd"),
    ("{{range .Config.Cmd}}{{if eq . \"httpd\"}}{{continue}}{{end}}{{.}}{{end}}", "-f"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ('{{if eq .State.Status "exited"}}x{{else if .State.Paused}}p{{else}}r{{end}}', "r"),
    ('{{if and .State.Running (eq .State.Pid 42)}}yes{{end}}', "yes"),
    ('{{if or .State.Paused .Config.Env}}yes{{else}}no{{end}}', "no"),
    ("{{if not .State.Paused}}ok{{end}}", "ok"),
    ("{{with .Config.Entrypoint}}E{{else}}none{{end}}", "none"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{$n := .Name}}{{with .State}}{{$n}}:{{.Status}}{{end}}", "/web:running"),
    ("{{$.Id}}", "abc123"),
    ("{{with .State}}{{$.Name}}{{end}}", "/web"),
    ("{{.State.Pid | printf \"%05d\"}}", "00042"),
    ('{{printf "%-6s|%3d|%v|%q" .Id 5 .Config.Cmd .Name}}', 'abc123|  5|[httpd -f]|"/web"'),
    ('{{(index .NetworkSettings.Networks "net1").IPAddress}}', "10.0.0.5"),
    ("{{len .Config.Cmd}} {{len .Config.Labels}}", "2 2"),
    ('{{join .Config.Cmd ","}}', "httpd,-f"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ("{{upper .State.Status}} {{lower \"AbC\"}} {{title \"hello world\"}}", "RUNNING abc Hello World"),
    ('{{truncate .Id 3}}|{{pad "x" 1 2}}|', "abc| x  |"),
    ("{{slice .Id 1 3}}", "bc"),
    ("{{.Ratio}} {{.Big}} {{.Int}}", "0.25 1e+06 1234567"),
    ("{{lt 1 2}} {{ge 3 3}} {{ne \"a\" \"b\"}} {{eq 1 2 1}}", "true true true true"),
    ("{{- .Id -}}  \n  {{- .Id}}", "abc123abc123"),
    ("a {{/* a comment */}}b", "a b"),
    ("{{.Id}}\\t{{.Name}}\\n", "abc123\t/web\n"),
    ('{{print "a" 1 2 "b"}} {{println "x"}}', "a1 2b x\n"),
    ('{{html "<a&b>"}} {{urlquery "a b&c"}}', "&lt;a&amp;b&gt; a+b%26c"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.State}}", "{running true false 42 0 <nil>}"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_renders_as_go_does(template, expected):
    assert render(template, DATA) == expected


ERRORS = [
    ("{{.Nope}}", "can't evaluate field Nope"),
    ("{{.State.Health.Status}}", "nil pointer evaluating .Status"),
    ("{{.Id.Foo}}", "can't evaluate field Foo in type string"),
    ("{{frobnicate .Id}}", 'function "frobnicate" not defined'),
    ("{{if .Id}}open", "unexpected EOF"),
    ("{{.Id}", "unclosed action"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{$nope}}", 'undefined variable "$nope"'),
    ("{{}}", "missing value for command"),
    ("{{index .Config.Cmd 5}}", "index out of range"),
    ("{{break}}", "break or continue outside range"),
    ("{{len .State.Pid}}", "len of type int"),
    ('{{(index .Config.Cmd 0}}', "unclosed left paren"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS)
def test_errors_say_what_go_says(template, message):
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace("$", r"\$")
                       .replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        render(template, DATA)


def test_methods_take_arguments():
    row = {"Names": "web", "Label": lambda key: {"tier": "front"}.get(key, "")}
    assert render('{{.Names}} {{.Label "tier"}}|{{.Label "x"}}|', row) == "web front||"


def test_a_parsed_template_runs_on_many_rows():
    t = parse("{{.A}}-{{range .L}}{{.}}{{end}}")
    assert [t.execute({"A": 1, "L": [1, 2]}), t.execute({"A": 2, "L": []})] == ["1-12", "2-"]


def test_table_headers_come_from_the_template():
    rows = [{"ID": "abc", "Names": "web"}, {"ID": "defghijk", "Names": "db"}]
    out = format_rows("table {{.ID}}\\t{{upper .Names}}", rows, {"ID": "CONTAINER ID", "Names": "NAMES"})
    assert out.splitlines() == ["CONTAINER ID   NAMES", "abc            WEB", "defghijk       DB"]
    assert format_rows("{{.Names}}", rows, {}) == "web\ndb"
    # a field the rows lack is an error even though the header knows no title for it
    with pytest.raises(ValueError, match="can't evaluate field Bogus"):
        format_rows("table {{.Bogus}}", rows, {})
