"""The kinds of error eksnet reports, kept apart (ARCHITECTURE.md, "Rules that keep it simple").

* `InputError`: the input is wrong; says where (file, line) and how to fix it.
* `NotModelled`: the input asks for something eksnet does not model yet; says exactly what.
* `CommandFailed`: a simulated command fails the way the real tool does (its stderr text and
  exit status), e.g. `ip route get` answering `RTNETLINK answers: Network is unreachable`.

The lab's "the kernel disagreed with the simulator" is a result, not an exception: it lives in
the lab's verification report.
"""

from __future__ import annotations


class EksnetError(Exception):
    """Base of every error the CLI turns into one line on stderr and a non-zero exit."""

    exit_code = 2

    def one_line(self) -> str:
        return str(self)


class InputError(EksnetError):
    """Bad input: a malformed manifest, an unknown pod, an overlapping CIDR, a truncated dump."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        fix: str | None = None,
        path: tuple[str | int, ...] | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.fix = fix
        self.path = path
        """Where in the cluster spec the bad value is (YAML keys and list indexes), for errors
        found after loading; `Cluster.locate` turns it into the file and line."""
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.source is not None:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}{self.message}{fix}"


class NotModelled(EksnetError):
    """The question is valid but eksnet does not model what answering it needs yet."""

    exit_code = 3

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"not modelled yet: {what}")


class CommandFailed(EksnetError):
    """A simulated command failed as the real one would: `stderr` is what the tool prints."""

    def __init__(self, stderr: str, exit_code: int = 2) -> None:
        self.stderr = stderr
        self.exit_code = exit_code
        super().__init__(stderr)


class UnsupportedCommand(EksnetError):
    """`eksnet exec` was asked for a command (or option) it does not render."""

    exit_code = 2
