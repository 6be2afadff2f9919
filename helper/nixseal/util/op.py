"""The 1Password CLI ``op``: read a field, write one back, ask who is signed in.

Values only ever travel through pipes. ``op read --no-newline`` writes the
value to our stdout pipe (never ``--out-file``, which would put it on disk).
Writing uses ``op item edit`` with the whole item as JSON on its stdin rather
than a ``field=value`` assignment: arguments are world-readable in
``/proc/PID/cmdline`` and end up in shell history and audit logs, which is
why 1Password's own documentation recommends a JSON template for sensitive
values. The price of the JSON route is a read-modify-write of the item
(``op item get --reveal`` then ``op item edit``): a concurrent edit of the
same item in between is lost, and op drops data it cannot round-trip through
JSON (passkeys on Login items), so push targets should be dedicated
Password or API Credential items.

Errors carry op's own words (its ``[ERROR] YYYY/MM/DD HH:MM:SS`` prefix
removed) and the fix when the cause is known.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from nixseal.errors import OpError

SCHEME = "op://"
# A biometric prompt or a 2FA sign-in may keep op waiting on the user.
TIMEOUT_SECONDS = 120
SIGN_IN_HINT = "run `eval $(op signin)` or set OP_SERVICE_ACCOUNT_TOKEN"

_ERROR_PREFIX = re.compile(r"^\[ERROR\]\s*(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s*)?")
_READ_PREFIX = re.compile(r"^could not read secret '[^']*':\s*")
_SIGNED_OUT = (
    "not currently signed in",
    "account is not signed in",
    "could not find session token",
    "session expired",
    "no accounts configured",
    "authorization prompt dismissed",
    "authorization timeout",
    "invalid bearer token",
    "(401)",
)
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Reference:
    """A parsed ``op://vault/item/[section/]field[?query]`` reference."""

    text: str
    vault: str
    item: str
    section: str | None
    field: str
    query: str  # "" or e.g. "ssh-format=openssh", "attribute=otp"


def parse_reference(text: str) -> Reference:
    """Check the shape of a reference; the error names it and the expected form."""

    def bad(why: str) -> OpError:
        return OpError(
            f"bad 1Password reference {text!r}: {why}; expected op://vault/item/[section/]field"
        )

    if not text.startswith(SCHEME):
        raise bad(f"does not start with {SCHEME}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise bad("contains a control character")
    body, _, query = text[len(SCHEME) :].partition("?")
    parts = body.split("/")
    if not 3 <= len(parts) <= 4:
        raise bad(f"has {len(parts)} part{'s' if len(parts) != 1 else ''}")
    if not all(p.strip() for p in parts):
        raise bad("has an empty part")
    if parts[0].startswith("-") or parts[1].startswith("-"):
        # op would take such a vault or item name for a flag.
        raise bad("a vault or item name starts with '-'; use its ID")
    if query and not all(re.fullmatch(r"[a-z-]+=[A-Za-z0-9_-]+", q) for q in query.split("&")):
        raise bad(f"malformed query {query!r} (e.g. ?ssh-format=openssh)")
    section = parts[2] if len(parts) == 4 else None
    return Reference(text, parts[0], parts[1], section, parts[-1], query)


def _op_binary(what: str) -> str:
    exe = shutil.which("op")
    if exe is None:
        raise OpError(
            f"{what}: the 1Password CLI `op` is not on PATH; install it "
            "(nixpkgs: _1password-cli) or add its directory to PATH"
        )
    return exe


def explain(stderr: bytes) -> str:
    """op's error message, one line, prefix removed, with a fix when known."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[ERROR]")]
    raw = errors[0] if errors else (lines[-1] if lines else "failed without a message")
    msg = _READ_PREFIX.sub("", _ERROR_PREFIX.sub("", raw))
    if len(msg) > _MAX_MESSAGE:
        msg = msg[: _MAX_MESSAGE - 3] + "..."
    low = msg.lower()
    if any(s.lower() in low for s in _SIGNED_OUT):
        return f"{msg}; {SIGN_IN_HINT}"
    if "isn't a vault" in low:
        return f"{msg}; check the vault name in the reference (`op vault list`)"
    if "isn't an item" in low:
        return f"{msg}; check the item name in the reference (`op item list --vault VAULT`)"
    if "does not have a field" in low:
        return f"{msg}; check the field (and section) name in the reference"
    return msg


def _run(args: list[str], what: str, stdin: bytes | None = None) -> bytes:
    """Run op; its stdout (which may be a value) is returned, never logged."""
    exe = _op_binary(what)
    try:
        proc = subprocess.run(
            [exe, *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise OpError(
            f"{what}: op did not answer within {TIMEOUT_SECONDS}s "
            "(an approval prompt left unanswered?)"
        ) from err
    except OSError as err:
        raise OpError(f"{what}: cannot run {exe}: {err.strerror}") from err
    if proc.returncode != 0:
        raise OpError(f"{what}: {explain(proc.stderr)}")
    return proc.stdout


def read(ref: str) -> bytes:
    """The value a reference points to, in memory, exactly as stored."""
    parse_reference(ref)
    return _run(["read", "--no-newline", ref], f"op read {ref}")


def read_identity(ref: str) -> bytes:
    """Like read(), for private keys: OpenSSH format even from an SSH Key item.

    op hands out an SSH Key item's private key as PKCS#8 unless asked for
    ``?ssh-format=openssh``; age and OpenSSH tools only read the latter.
    """
    data = read(ref)
    if data.lstrip().startswith(b"-----BEGIN PRIVATE KEY-----") and "?" not in ref:
        return read(f"{ref}?ssh-format=openssh")
    return data


def whoami() -> str:
    """Who op is signed in as, e.g. ``alice@example.com at https://my.1password.com``."""
    out = _run(["whoami", "--format", "json"], "op whoami")
    try:
        info = json.loads(out)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OpError("op whoami: unexpected output (not JSON)") from err
    if not isinstance(info, dict):
        raise OpError("op whoami: unexpected output (not a JSON object)")
    who = info.get("email") or info.get("user_type") or "unknown user"
    url = info.get("url")
    return f"{who} at {url}" if url else str(who)


def _matches(value: Any, wanted: str) -> bool:
    return isinstance(value, str) and value.casefold() == wanted.casefold()


def _section_matches(field: dict[str, Any], section: str) -> bool:
    sec = field.get("section")
    return isinstance(sec, dict) and (
        _matches(sec.get("label"), section) or _matches(sec.get("id"), section)
    )


def set_field(item: dict[str, Any], ref: Reference, value: str) -> None:
    """Set ref's field in an item as ``op item get --format json`` prints it.

    A field that does not exist yet is added as a concealed field (in its
    section, created when missing), the way an assignment statement would.
    """
    fields = item.setdefault("fields", [])
    if not isinstance(fields, list):
        raise OpError(f"op item get {ref.item}: unexpected item JSON (fields is not a list)")
    found = [
        f
        for f in fields
        if isinstance(f, dict)
        and (_matches(f.get("label"), ref.field) or _matches(f.get("id"), ref.field))
        and (ref.section is None or _section_matches(f, ref.section))
    ]
    if len(found) > 1:
        raise OpError(
            f"{ref.text}: {len(found)} fields named {ref.field!r} in item {ref.item!r}; "
            "name the section: op://vault/item/section/field"
        )
    if found:
        found[0]["value"] = value
        return
    new: dict[str, Any] = {"id": "", "type": "CONCEALED", "label": ref.field, "value": value}
    if ref.section is not None:
        sections = item.setdefault("sections", [])
        match = [
            s
            for s in sections
            if isinstance(s, dict)
            and (_matches(s.get("label"), ref.section) or _matches(s.get("id"), ref.section))
        ]
        if match:
            new["section"] = {"id": match[0].get("id", ""), "label": match[0].get("label", "")}
        else:
            sections.append({"id": ref.section, "label": ref.section})
            new["section"] = {"id": ref.section, "label": ref.section}
    fields.append(new)


def write(ref: str, value: bytes) -> None:
    """Store value in the field ref names, through op, never on a command line."""
    parsed = parse_reference(ref)
    if parsed.query:
        raise OpError(f"{ref}: cannot write through a reference with ?{parsed.query}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise OpError(f"{ref}: 1Password fields hold text; this value is binary") from err
    where = ["--vault", parsed.vault]
    raw = _run(
        ["item", "get", parsed.item, *where, "--format", "json", "--reveal"],
        f"op item get {parsed.item} (for {ref})",
    )
    try:
        item = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OpError(f"op item get {parsed.item}: unexpected output (not JSON)") from err
    if not isinstance(item, dict):
        raise OpError(f"op item get {parsed.item}: unexpected output (not a JSON object)")
    set_field(item, parsed, text)
    payload = json.dumps(item).encode()
    _run(["item", "edit", parsed.item, *where], f"op item edit {parsed.item} (for {ref})", payload)
