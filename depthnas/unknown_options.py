"""An option the chosen command does not have, said in that command's words.

argparse reports it with the top-level usage (`depthnas train ... --standalone-epochs 3`
showed `usage: depthnas [-h] ... {search,...}`), or after an error it caused
(`export --run R --output x.onnx` took x.onnx as the model file: "argument model: not
allowed with argument --run"). Checked before parsing, against the command's own
options, with the nearest one it has."""

from __future__ import annotations

import argparse
import difflib


def check_unknown_options(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """SystemExit (2), through the command's own parser, for the first `--name` in
    `argv` the command has no option for, nor one it abbreviates (argparse takes a
    unique prefix). Nothing for a command it does not know: argparse says that."""
    commands = _commands(parser)
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    command = commands.get(argv[at]) if at is not None else None
    if command is None:
        return
    known = [s for action in command._actions for s in action.option_strings]
    for token in argv[at + 1:]:
        if token == "--":  # what follows is positional
            return
        name = token.split("=", 1)[0]
        if " " in name:  # `--out "--my run"`: argparse reads it as a value
            continue
        if not name.startswith("--") or any(k.startswith(name) for k in known):
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
        command.error(f"unrecognized arguments: {name}" + (f" (did you mean {near[0]}?)" if near else ""))


def stray_arguments(parser: argparse.ArgumentParser, command: str, argv: list[str],
                    extra: list[str]) -> None:
    """SystemExit (2), through `command`'s parser, for words no option or argument of
    it takes (`--set a=1 b=2`: each --set takes one KEY=VALUE)."""
    hint = ""
    first = argv.index(extra[0]) if extra[0] in argv else -1
    if "=" in extra[0] and first >= 2 and argv[first - 2] == "--set":
        hint = f" (each --set takes one KEY=VALUE: --set {argv[first - 1]} --set {extra[0]})"
    _commands(parser)[command].error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name (argparse keeps them nowhere public)."""
    return next((a.choices for a in parser._actions
                 if isinstance(a, argparse._SubParsersAction)), {})
