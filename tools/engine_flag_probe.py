"""Parse engine command lines with the engine's own argument parser; runs in the engine's venv.

``tools/check_engine_flags.py`` starts this file with the python of ``.engine-venvs/vllm`` or
``.engine-venvs/sglang`` (those venvs hold the engine, not this project: only the standard
library and the engine are imported here). It reads ``{"engine": ..., "cases": [...]}`` as
JSON on stdin, each case ``{"name", "argv", "expect": {field: value}}`` with ``argv`` the
engine arguments the wrapper builds (without the launcher), and writes its findings as JSON to
the file named by its only argument (the engines log to stdout).

For each case it

* parses every flag of ``argv`` on its own (after the model, which both parsers need) and
  says whether the parser knows it by that exact name (argparse would also take an
  abbreviation of a longer flag: a renamed flag could pass unnoticed), whether its value has
  the right type or choice, whether the parser warned that it is deprecated, and whether the
  parsed value is the value given (a JSON argument parsed into the same object, a number into
  the same number);
* parses the whole ``argv`` the way the engine's launcher does and compares the fields of the
  resulting configuration with ``expect``.

The parsers, as the engines' launchers build them:

* vLLM: the ``vllm serve`` subcommand (``vllm/entrypoints/cli/serve.py``:
  ``ServeSubcommand.subparser_init`` = ``make_arg_parser`` of
  ``vllm/entrypoints/common/cli_args.py``: ``FrontendArgs`` + ``AsyncEngineArgs``) under a
  ``FlexibleArgumentParser``, then ``ServeSubcommand.validate`` (checks the chat template
  file, among others) and ``AsyncEngineArgs.from_cli_args``. Building the parser builds
  ``VllmConfig`` defaults, which need a platform: without a GPU vLLM finds none, so this sets
  ``VLLM_TARGET_DEVICE=cpu`` (the flags it registers are the same).
* SGLang: ``sglang.srt.server_args.prepare_server_args``, which ``python -m
  sglang.launch_server`` calls with its argv (``ServerArgs.add_cli_args`` on an
  ``argparse.ArgumentParser``, then ``ServerArgs.from_cli_args``).

Neither resolves the configuration against a model (that needs the model's files).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any


class VLLMParser:
    name = "vllm"
    described = (
        "vllm serve: make_arg_parser (vllm/entrypoints/common/cli_args.py) under "
        "FlexibleArgumentParser, ServeSubcommand.validate, AsyncEngineArgs.from_cli_args"
    )

    def __init__(self) -> None:
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
        from vllm.entrypoints.cli import serve
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        self.top = FlexibleArgumentParser(prog="vllm")
        subparsers = self.top.add_subparsers(required=False, dest="subparser")
        (self.command,) = serve.cmd_init()
        self.parser = self.command.subparser_init(subparsers)

    def base(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """``serve MODEL`` and the flags after them."""
        return argv[:2], argv[2:]

    def parse(self, argv: list[str]) -> argparse.Namespace:
        return self.top.parse_args(argv)

    def configure(self, argv: list[str]) -> Callable[[str], Any]:
        from vllm.engine.arg_utils import AsyncEngineArgs

        args = self.top.parse_args(argv)
        self.command.validate(args)
        args.model = args.model_tag  # what ServeSubcommand.cmd does first
        engine = AsyncEngineArgs.from_cli_args(args)
        return lambda field: (
            getattr(engine, field) if hasattr(engine, field) else getattr(args, field)
        )


class SGLangParser:
    name = "sglang"
    described = (
        "sglang.launch_server: prepare_server_args (ServerArgs.add_cli_args on "
        "argparse.ArgumentParser, ServerArgs.from_cli_args)"
    )

    def __init__(self) -> None:
        from sglang.srt.server_args import ServerArgs, prepare_server_args

        self.parser = argparse.ArgumentParser(prog="sglang serve")
        ServerArgs.add_cli_args(self.parser)
        self._prepare = prepare_server_args

    def base(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """``--model-path MODEL`` and the flags after them."""
        return argv[:2], argv[2:]

    def parse(self, argv: list[str]) -> argparse.Namespace:
        return self.parser.parse_args(argv)

    def configure(self, argv: list[str]) -> Callable[[str], Any]:
        server_args = self._prepare(argv)
        return lambda field: getattr(server_args, field)


PARSERS = {"vllm": VLLMParser, "sglang": SGLangParser}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """What a parse printed to stderr, logged at WARNING or above, or warned."""
    lines: list[str] = []
    handler = _Captured()
    loggers = [logging.getLogger(n) for n in ("", "vllm", "sglang")]
    for logger in loggers:
        logger.addHandler(handler)
    stderr = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
            warnings.simplefilter("always")
            yield lines
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        said = stderr.getvalue().splitlines() + handler.lines + [str(w.message) for w in caught]
        for line in (_ANSI.sub("", line).strip() for line in said):
            if line and line not in lines:
                lines.append(line)


def plain(value: Any) -> Any:
    """A parsed value as JSON would hold it (enums by value, other objects by ``repr``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str | int | float):
        return value.value
    return repr(value)


def switch_value(action: argparse.Action, flag: str) -> Any:
    """What a flag without a value sets (``store_true``, ``store_false``, ``--no-x``)."""
    if action.const is not None:
        return action.const
    return not flag.startswith(("--no-", "--disable-"))  # vLLM's EnableDisableAction too


def survived(given: list[str], parsed: Any, switched: Any) -> bool:
    """Whether the parser kept the values we gave (JSON as the same object, numbers equal);
    ``switched``: what a switch (no values) should set."""
    if not given:
        return parsed == switched
    if len(given) > 1:
        return (
            isinstance(parsed, list)
            and len(parsed) == len(given)
            and all(survived([g], p, switched) for g, p in zip(given, parsed, strict=True))
        )
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if given[0][:1] in "{[":
        try:
            return plain(parsed) == json.loads(given[0])
        except ValueError:
            return False
    if isinstance(parsed, bool) or not isinstance(parsed, int | float):
        return str(plain(parsed)) == given[0]
    try:
        return float(given[0]) == parsed
    except ValueError:
        return False


def flag_groups(parser: argparse.ArgumentParser, tokens: list[str]) -> list[list[str]]:
    """Split flags and their values: a known flag takes as many values as its action wants;
    an unknown one takes what follows it up to the next ``-``-token."""
    groups: list[list[str]] = []
    for token in tokens:
        if not groups or (token.startswith("-") and not _wants_value(parser, groups[-1])):
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def _wants_value(parser: argparse.ArgumentParser, group: list[str]) -> bool:
    flag, values = group[0], group[1:]
    if "=" in flag:
        return False
    action = parser._option_string_actions.get(flag)
    if action is None:
        return not values
    if action.nargs in (None, "?"):
        return not values and action.nargs is None
    return isinstance(action.nargs, int) and len(values) < action.nargs


def _error_kind(message: str) -> str:
    if "unrecognized arguments" in message:
        return "unknown"
    if "invalid choice" in message:
        return "bad choice"
    if "invalid" in message or "expected" in message or "argument" in message:
        return "bad value"
    return "rejected"


def try_parse(argv: list[str], call: Callable[..., Any]) -> dict[str, Any]:
    """``call(argv)``; what it returned, or how it failed, and what it printed or warned."""
    result: dict[str, Any] = {}
    with captured() as output:
        try:
            result["value"] = call(argv)
        except SystemExit:  # argparse's error(): the message went to stderr
            result["error"] = "exit"
        except Exception as exc:  # the engine's own validation
            result["error"] = f"{type(exc).__name__}: {exc}"
    result["output"] = output
    if result.get("error") == "exit":
        errors = [line for line in output if "error:" in line] or output or ["(no message)"]
        result["error"] = errors[-1]
    return result


def check_flag(engine: Any, base: list[str], group: list[str]) -> dict[str, Any]:
    flag, values = group[0], group[1:]
    name = flag.split("=", 1)[0]
    given = [flag.split("=", 1)[1]] if "=" in flag else values
    report: dict[str, Any] = {"argv": group, "status": "ok", "problems": []}
    parsed = try_parse(base + group, engine.parse)
    if "error" in parsed:
        report["status"] = _error_kind(parsed["error"])
        report["problems"].append(parsed["error"])
        return report
    action = engine.parser._option_string_actions.get(name)
    if action is None:
        report["status"] = "inexact"
        report["problems"].append(
            f"{name} is not one of the parser's flags: argparse took it as an abbreviation of a"
            " longer flag, or the parser rewrote it"
        )
        return report
    value = getattr(parsed["value"], action.dest, None)
    report.update(dest=action.dest, parsed=plain(value))
    deprecated = [line for line in parsed["output"] if "deprecat" in line.lower()]
    if deprecated:
        report["status"] = "deprecated"
        report["problems"] += deprecated
    if not survived(given, value, switch_value(action, name)):
        report["status"] = "changed"
        report["problems"].append(f"gave {given!r}, the parser made {plain(value)!r}")
    return report


def check_case(engine: Any, case: dict[str, Any]) -> dict[str, Any]:
    argv = case["argv"]
    base, rest = engine.base(argv)
    flags = [check_flag(engine, base, group) for group in flag_groups(engine.parser, rest)]
    whole = try_parse(argv, engine.configure)
    report: dict[str, Any] = {"name": case["name"], "argv": argv, "flags": flags, "fields": []}
    if "error" in whole:
        report["error"] = whole["error"]
        return report
    read = whole["value"]
    for field, expected in case["expect"].items():
        try:
            actual = plain(read(field))
        except AttributeError:
            actual = "(no such field)"
        report["fields"].append(
            {"field": field, "expected": expected, "actual": actual, "ok": actual == expected}
        )
    return report


def main() -> int:
    request = json.load(sys.stdin)
    engine = PARSERS[request["engine"]]()
    report = {
        "engine": engine.name,
        "version": importlib.metadata.version(engine.name),
        "parser": engine.described,
        "python": sys.version.split()[0],
        "cases": [check_case(engine, case) for case in request["cases"]],
    }
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
