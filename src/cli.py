"""Entry-point helpers: user errors become one clear line on stderr and exit code 2, never a traceback; flags
keep one name across scripts and accept the names other scripts use as aliases."""

import argparse
import sys
from collections.abc import Callable
from typing import Any

from src.errors import UserError
from src.logger import get_logger

USER_ERROR_EXIT_CODE = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    try:
        code = main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


class _StoreNotingAlias(argparse.Action):
    """Stores like ``store``; given under an alias, says once which flag it stands for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string and option_string != self.option_strings[0]:
            get_logger().info(f"note: {option_string} is read as {self.option_strings[0]}")
        setattr(namespace, self.dest, values)


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, *aliases: str,
             **kwargs: Any) -> argparse.Action:
    """``--name`` (the one name this project uses for the thing), also accepted as each of ``aliases`` (names
    other scripts or projects use for it); help lists the aliases with a note, and using one logs one note."""
    if aliases and kwargs.get("help") is not argparse.SUPPRESS:
        note = f"{' and '.join(aliases)}: the same flag under the name other scripts use"
        kwargs["help"] = f"{kwargs['help']} ({note})" if kwargs.get("help") else note
    return parser.add_argument(name, *aliases, action=_StoreNotingAlias, **kwargs)
