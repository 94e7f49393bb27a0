"""Entry-point wrapper: user errors become one clear line on stderr and exit code 2, never a traceback."""

import sys
from collections.abc import Callable

from src.errors import UserError

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
