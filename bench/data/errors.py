"""The error of input files and options: a file that cannot be scored as given, or options that do not fit
together. Its own module so that a command can refuse a bad option before it imports the readers."""

from __future__ import annotations

from protocols.errors import BenchError


class InputError(BenchError):
    """A file that cannot be scored as given; the message names the file and the problem."""
