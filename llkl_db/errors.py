"""Errors that reach a user as one line and a non-zero exit code, never as a traceback."""


class LlklError(Exception):
    """Bad input or bad data: the message names the file or value and the problem."""

    exit_code = 1


class UnknownEntryError(LlklError):
    """A model or entry name that the dataset does not hold (exit code 2, like a usage error)."""

    exit_code = 2


class BadValueError(LlklError):
    """A value the user gave that cannot be used: ``param`` names the library parameter, so the CLI can name its flag."""

    def __init__(self, param: str, value: object, problem: str) -> None:
        super().__init__(f"{param} {value!r}: {problem}")
        self.param, self.value, self.problem = param, value, problem
