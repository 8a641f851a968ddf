"""`pyrun`: the Docker-shaped verbs. A lazy command table keeps `--help` and start-up fast:
a verb's module is imported only when that verb runs."""

from __future__ import annotations

import importlib
import os
import sys

import click

from pybuild.cli.common import run_guarded

# verb -> "module:attribute" of a click command. One line per verb; keep the groups.
COMMANDS: dict[str, str] = {
    # image store (issue 3): pybuild.cli.images
    "images": "pybuild.cli.images:images_cmd",
    "tag": "pybuild.cli.images:tag_cmd",
    "rmi": "pybuild.cli.images:rmi_cmd",
    "history": "pybuild.cli.images:history_cmd",
    "import": "pybuild.cli.images:import_cmd",
    "save": "pybuild.cli.images:save_cmd",
    "load": "pybuild.cli.images:load_cmd",
    "image": "pybuild.cli.images:image_group",
    "bootstrap": "pybuild.cli.images:bootstrap_cmd",
    "system": "pybuild.cli.system:system",
    # build (issue 5): the same command as `pybuild`
    "build": "pybuild.cli.build_command:build",
    "builder": "pybuild.cli.builder:builder_group",
    # runtime, foreground run (issue 4): pybuild.cli.run
    "run": "pybuild.cli.run:run",
    # registry (issue 6): pybuild.cli.registry
    "pull": "pybuild.cli.registry:pull_command",
    "push": "pybuild.cli.registry:push_command",
    "login": "pybuild.cli.registry:login_command",
    "logout": "pybuild.cli.registry:logout_command",
    "search": "pybuild.cli.registry:search_command",
    "manifest": "pybuild.cli.registry:manifest_group",
    # container lifecycle, networks, volumes (issue 7): pybuild.cli.containers, ...
    "create": "pybuild.cli.containers:create_cmd",
    "start": "pybuild.cli.containers:start_cmd",
    "stop": "pybuild.cli.containers:stop_cmd",
    "restart": "pybuild.cli.containers:restart_cmd",
    "kill": "pybuild.cli.containers:kill_cmd",
    "rm": "pybuild.cli.containers:rm_cmd",
    "wait": "pybuild.cli.containers:wait_cmd",
    "rename": "pybuild.cli.containers:rename_cmd",
    "port": "pybuild.cli.containers:port_cmd",
    "container": "pybuild.cli.containers:container_group",
    "ps": "pybuild.cli.ps:ps_cmd",
    "logs": "pybuild.cli.logs:logs_cmd",
    "attach": "pybuild.cli.attach:attach_cmd",
    "inspect": "pybuild.cli.inspect:inspect_cmd",
    "network": "pybuild.cli.network:network_group",
    "volume": "pybuild.cli.volume:volume_group",
    "commit": "pybuild.cli.commit:commit_cmd",
    "cp": "pybuild.cli.container_fs:cp_cmd",
    "diff": "pybuild.cli.container_fs:diff_cmd",
    "export": "pybuild.cli.container_fs:export_cmd",
    "exec": "pybuild.cli.exec:exec_cmd",
    "top": "pybuild.cli.monitor:top_cmd",
    "stats": "pybuild.cli.monitor:stats_cmd",
    "pause": "pybuild.cli.monitor:pause_cmd",
    "unpause": "pybuild.cli.monitor:unpause_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root", envvar="PYBUILD_ROOT", help="Store root (default /var/lib/pybuild as root)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="pybuild", prog_name="pyrun")
@click.pass_context
def cli(ctx: click.Context, root: str | None, debug: bool) -> None:
    """Run and manage containers and images, the Docker way, with no daemon."""
    if debug:
        os.environ["PYBUILD_DEBUG"] = "1"
    ctx.obj = {"root": root}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sys.exit(run_guarded(lambda: _invoke(args)))


def _invoke(args: list[str]):
    from pybuild.cli.exitcodes import engine_error_exit_code
    from pybuild.errors import PybuildError

    try:
        return cli.main(args=args, prog_name="pyrun", standalone_mode=False)
    except PybuildError as e:
        e.exit_code = engine_error_exit_code(args, e.exit_code)
        raise


if __name__ == "__main__":
    main()
