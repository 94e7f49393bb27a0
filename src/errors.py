"""The one exception type for mistakes a user can fix (bad path, bad key, wrong checkpoint...)."""


class UserError(Exception):
    """Raised for bad input; entry points print its message as one line and exit with code 2."""
