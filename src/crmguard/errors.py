"""Error hierarchy: one root, one subclass per stage, each carrying where it happened."""

from __future__ import annotations


class CrmguardError(Exception):
    """Root of every error crmguard raises on purpose.

    ``file``, ``line`` and ``field`` say where the problem is, when known, so a user can go
    straight to it; ``str()`` includes them.
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [p for p in (self.file, f"line {self.line}" if self.line else None, self.field and f"field {self.field}") if p]
        return f"{': '.join([', '.join(where), self.message]) if where else self.message}"


class SourceParseError(CrmguardError):
    """A log file or record could not be read or recognised."""


class LakeError(CrmguardError):
    """The lake could not be read or written."""


class ConfigError(CrmguardError):
    """A user-supplied option or path is wrong."""


class RuleError(CrmguardError):
    """A detection rule is invalid (pySigma rejected it, or it names an unknown field)."""


class EngineError(CrmguardError):
    """Running the rules failed."""


class NotificationError(CrmguardError):
    """An alert or notice could not be delivered (sink down, refused, misconfigured)."""


class ResponseError(CrmguardError):
    """An incident action cannot be done: unknown incident, a clock not yet set, a late filing
    without its reason, a scope without data."""


class SalesforceApiError(ResponseError):
    """A Salesforce REST call failed: ``call`` names it (method and path), ``status`` is the HTTP
    status (None when no answer came back)."""

    def __init__(self, message: str, *, call: str, status: int | None = None, body: str = "") -> None:
        self.call = call
        self.status = status
        self.body = body
        super().__init__(f"{call}: {message}" + (f" (HTTP {status})" if status is not None else ""))
