"""One exception hierarchy. Every message says what went wrong and what to do next.

The CLI turns any `FledglingError` into one line on stderr and a non-zero exit.
"""


class FledglingError(Exception):
    """Base of every error Fledgling raises on purpose."""

    exit_code = 1


class ConfigError(FledglingError):
    """fledgling.toml (or an environment variable) is wrong."""

    exit_code = 2


class InputError(FledglingError):
    """A file or payload the user gave us cannot be read. Names the file, record and field."""

    exit_code = 3

    def __init__(self, message: str, *, source: str | None = None, record: str | int | None = None,
                 field: str | None = None):
        self.source = source
        self.record = record
        self.field = field
        self.reason = message
        where = []
        if source:
            where.append(str(source))
        if record is not None:
            where.append(f"record {record}" if not isinstance(record, str) else record)
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class StoreError(FledglingError):
    """The trace store cannot be reached or used."""

    exit_code = 4


class ContractError(FledglingError):
    """A contract cannot be inferred, or a schema in it is invalid."""

    exit_code = 5


class UpstreamError(FledglingError):
    """A model endpoint failed (timeout, connection, 5xx, malformed body)."""

    exit_code = 6
