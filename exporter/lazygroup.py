"""A click group whose heavy subcommands are imported only when one of them is used.

The analysis commands need pandas and matplotlib (about a second to import). ``carmetrics run``,
``--help`` and ``command`` must not pay for that, so the group lists them from a static table of
names and one-line helps and imports their module only when such a command is invoked or its own
help is asked for. A test keeps the table in step with the module. The import is a plain one: a
missing or broken module is an error when the command is used, never a silently absent command.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``"package.module:attribute"``) and its one-line help."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        module, _, attr = self.target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return cmd


class LazyGroup(click.Group):
    """A ``click.Group`` with some subcommands named in ``lazy`` and imported on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The ``Commands`` section, lazy commands described from the table (not imported) and
        shortened as click shortens any other."""
        shown: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is None and name in self.lazy:
                cmd = click.Command(name, help=self.lazy[name].short_help)
            else:
                cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                shown.append((name, cmd))
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in shown])
