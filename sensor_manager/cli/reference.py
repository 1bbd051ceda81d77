"""The CLI reference, rendered from the commands' own help so the docs match `--help`.

docs/cli.md embeds `markdown()` through cog; `tests/test_docs.py` runs `cog --check`.
"""
from __future__ import annotations

import typer

# Accepted before every command's name and described once in the docs; a command's entry names the ones
# it also takes after its name instead of repeating them in its table.
COMMON_OPTIONS = ("config", "project_dir", "quiet", "verbose")


def _own_parsers():
    """Commands that hand their arguments to an argparse parser shared with another entry point."""
    from uploader.cli import build_parser

    return {"upload": build_parser}


def _commands(group, prefix: str = ""):
    for name in sorted(group.commands):
        command = group.commands[name]
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def _option_cell(param) -> str:
    names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    return names if param.param_type_name == "option" else f"`{(param.metavar or param.name).upper()}`"


def shared_after_name(command) -> list[str]:
    """The shared options `command` also accepts after its name, e.g. `--quiet/-q`."""
    return ["/".join(param.opts) for param in command.params if param.name in COMMON_OPTIONS]


def _click_rows(command) -> tuple[list[str], list[tuple[str, str]]]:
    rows = [(_option_cell(param), getattr(param, "help", None) or "") for param in command.params
            if param.name not in (*COMMON_OPTIONS, "help")]
    return shared_after_name(command), rows


def _argparse_rows(parser) -> tuple[list[str], list[tuple[str, str]]]:
    shared, rows = [], []
    for action in parser._actions:  # argparse offers no public way to list its options
        if action.dest in COMMON_OPTIONS:
            shared.append("/".join(action.option_strings))
        elif action.dest != "help":
            rows.append((", ".join(f"`{opt}`" for opt in action.option_strings), action.help or ""))
    return shared, rows


def markdown() -> str:
    from sensor_manager.cli import app

    root = typer.main.get_command(app)
    own_parsers = _own_parsers()
    out: list[str] = []
    for name, command in _commands(root):
        text = (command.help or "").strip()
        summary, _, rest = text.partition("\n")
        out.append(f"#### `{name}`\n\n{summary.strip()}")
        if rest.strip():
            out.append(" ".join(line.strip() for line in rest.strip().splitlines()))
        own_parser = own_parsers.get(name)
        shared, options = _argparse_rows(own_parser()) if own_parser else _click_rows(command)
        out.append("After its name it also takes " + ", ".join(f"`{opt}`" for opt in shared) + "." if shared
                   else "It takes the shared options only before its name.")
        rows = ["| option | meaning |", "|---|---|"]
        for cell, help_text in options:
            help_text = help_text.replace("|", "\\|").replace("\n", " ")
            rows.append(f"| {cell} | {help_text} |")
        out.append("\n".join(rows))
    return "\n\n".join(out)
