"""The admin side's vocabulary: the states of a file against the rules,
the kinds of readers and generators, and the JSON of `check` and `audit`.

Enums are str-valued: a state prints, logs and serialises as the word the
docs use (`installed`, `stale`), and compares equal to it.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, TypedDict


class DriftStatus(str, enum.Enum):
    """An age file compared with what the rules say should read it."""

    OK = "ok"
    STALE = "stale"  # recipients differ from the rules
    UNVERIFIED = "unverified"  # age recipients unknown: no valid record
    MISSING = "missing"
    CORRUPT = "corrupt"

    def __str__(self) -> str:
        return self.value


class ReaderKind(str, enum.Enum):
    """Who a recipient key belongs to in the rules."""

    ADMIN = "admin"
    HOST = "host"
    USER = "user"

    def __str__(self) -> str:
        return self.value


class GeneratorKind(str, enum.Enum):
    PASSWORD = "password"  # noqa: S105 (the kind's name, not a password)
    HEX = "hex"
    BASE64 = "base64"
    SSH_ED25519 = "ssh-ed25519"
    AGE = "age"
    WIREGUARD = "wireguard"
    HTPASSWD = "htpasswd"
    CA = "ca"
    CERT = "cert"
    COMMAND = "command"  # a script of the repository's (generator.command)

    def __str__(self) -> str:
        return self.value

    @property
    def sized(self) -> bool:
        """Whether the output size is a choice (the key kinds have a fixed size)."""
        return self in (GeneratorKind.PASSWORD, GeneratorKind.HEX, GeneratorKind.BASE64)


class Generator(NamedTuple):
    """As immutable as a frozen dataclass, and cheaper to define: models is
    imported at every boot."""

    kind: GeneratorKind
    length: int | None = None  # None: the kind's default
    # Secrets the value is made from (a command's inputs, a cert's CA, the
    # password a hash is of): rotating one of them makes this one due.
    inputs: tuple[str, ...] = ()
    command: str | None = None  # relative to the rules file's directory
    prompts: tuple[str, ...] = ()  # values typed at the terminal, in order
    outputs: tuple[str, ...] = ()  # a command's output files
    public: tuple[str, ...] = ()  # the outputs committed in plain text
    names: tuple[str, ...] = ()  # a cert's DNS names
    user: str | None = None  # htpasswd: the user name of the line
    days: int | None = None  # ca, cert: validity


# -- the JSON documents of `check --json` and `audit --json` ---------------
# Their keys are a public interface (scripts and CI read them): a change
# here changes that interface.


class ReaderJson(TypedDict):
    kind: str  # a ReaderKind
    name: str


class CheckEntryJson(TypedDict):
    name: str
    file: str
    status: str  # a DriftStatus
    missing: list[ReaderJson]
    extra: list[str]
    problems: list[str]
    fix: str | None


class CheckReportJson(TypedDict):
    ok: bool
    rules: str
    secrets: list[CheckEntryJson]
    orphans: list[str]
    shared_keys: list[str]  # one key given to several readers (hosts, admins, users)


class AuditReaderJson(TypedDict):
    kind: str  # a ReaderKind
    name: str
    key: str
    verified: bool | None  # None: an age key the state file has no record for


class AuditEntryJson(TypedDict):
    name: str
    file: str
    status: str  # a DriftStatus
    readers: list[AuditReaderJson]
    extra_readers: list[str]
    rotated: str | None
    age_days: int | None
    age_basis: str  # recorded, git, replaced or unknown
    rotate_after: str | None
    overdue: bool
    last_change: str | None
    derived_from: list[str]  # the secrets the value was made from
    inputs_rotated: list[str]  # those of them rotated since: the value is due
    findings: list[str]


class AuditReportJson(TypedDict):
    rules: str
    findings: int
    secrets: list[AuditEntryJson]


# -- the JSON document of `status --json` ------------------------------------------


class StatusEntryJson(TypedDict):
    kind: str  # secret or template
    name: str
    # secrets: up to date, outdated, failed, missing, removed;
    # templates: their state in the last install (installed, changed, unchanged, failed)
    status: str
    detail: str | None
    installed: str | None  # SHA-256 of the age file the host's value came from
    repository: str | None  # SHA-256 of the repository's age file now


class StatusHostJson(TypedDict):
    name: str
    reachable: bool
    error: str | None  # why there is no status: unreachable, no status file, unreadable
    generations: dict[str, int]  # mount point -> the generation its last install made
    differences: int
    entries: list[StatusEntryJson]


class StatusReportJson(TypedDict):
    ok: bool  # every host reached, and nothing differs
    rules: str
    hosts: list[StatusHostJson]


# -- the JSON document of `import-sops --json` ---------------------------------------


class ImportSopsSecretJson(TypedDict):
    name: str
    sops_file: str
    key: str  # the sops key path (a/b) of a single value; "" for a whole file
    format: str
    hosts: list[str]
    users: list[str]


class ImportSopsHostJson(TypedDict):
    name: str
    key: str
    anchor: str


class ImportSopsSkippedJson(TypedDict):
    rule: str
    kind: str  # pgp, kms, gcp_kms, azure_keyvault, hc_vault_transit_uri, hc_vault
    key: str


class ImportSopsReportJson(TypedDict):
    rules: str
    sops_config: str
    dry_run: bool
    secrets: list[ImportSopsSecretJson]
    added_hosts: list[ImportSopsHostJson]
    not_imported: list[ImportSopsSkippedJson]
    options: dict[str, str]  # sops-nix option -> nixseal option
