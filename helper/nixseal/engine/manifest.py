"""The manifest (v1): what the NixOS module hands `nixseal install`.

Parsing is strict and complete before anything is touched: a manifest
that is wrong anywhere is rejected as a whole (ManifestError, exit 2),
with a message naming the field, e.g. ``secrets[3].name: hostile name
"../../etc/shadow"``. The result is immutable NamedTuples the engine trusts.
"""

from __future__ import annotations

from types import MappingProxyType

from nixseal.errors import ManifestError
from nixseal.util import fastjson
from nixseal.util.lean import NamedTuple
from nixseal.util.names import (
    SEGMENT_CHARS,
    is_launchd_label,
    is_secret_name,
    is_segment,
    is_unit_name,
    only,
)
from nixseal.util.readfile import MANIFEST_LIMIT, read_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Set
    from typing import Any

VERSION = 1
DEFAULT_MOUNT_POINT = "/run/secrets.d"
DEFAULT_SYMLINK_PATH = "/run/secrets"
DEFAULT_KEEP_GENERATIONS = 1
# Templates without a path of their own land here, inside the generation.
RENDERED_DIR = "rendered"
RUNTIME_DIR_TOKEN = "%r"  # noqa: S105 (a path token, not a password)
# The system the manifest was built for: where the generations are mounted
# (a ramfs or tmpfs on Linux, a RAM disk on macOS) and what restartUnits
# name (systemd units, or launchd labels on macOS). Absent: Linux, as
# before the field existed.
LINUX = "linux"
DARWIN = "darwin"
PLATFORMS = (LINUX, DARWIN)

# What Linux file systems hold: a name of 255 bytes, a path or a symlink's
# target of 4,095 (PATH_MAX less its NUL).
NAME_MAX = 255
PATH_MAX = 4095
_DIGITS = "0123456789"
_OCTAL = "01234567"
_ACCOUNT_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
# uid_t and gid_t are 32 bits; (uid_t)-1 means "leave unchanged" to chown.
_MAX_ID = 2**32 - 2

# The manifest's top-level fields (v1, listed in docs/architecture.md); the NixOS module
# must write exactly these.
TOP_KEYS = frozenset(
    {
        "version",
        "mountPoint",
        "symlinkPath",
        "keepGenerations",
        "useTmpfs",
        "identityPaths",
        "userMode",
        "secrets",
        "templates",
        "placeholders",
        "restartListPath",
        "reloadListPath",
        "systemdCreds",
        "platform",
    }
)
_ENTRY_KEYS = {"name", "path", "mode", "owner", "group", "restartUnits", "reloadUnits"}
_SECRET_KEYS = _ENTRY_KEYS | {"file", "seal", "format", "key", "document"}
# What an age file holds: the value as it is, or a document of many values
# (nixseal.util.document takes one key of it).
FORMATS = ("binary", "json", "yaml", "toml", "dotenv", "ini")
_TEMPLATE_KEYS = _ENTRY_KEYS | {"content"}


# NamedTuples, not frozen dataclasses: as immutable, and importing
# dataclasses (with inspect, ast and dis) cost every boot ~5 ms; declared
# with nixseal.util.lean's, which needs no typing at run time.
class Secret(NamedTuple):
    """A secret: where its file goes, who reads it, and its age file."""

    name: str
    path: str  # where users find it (absolute; or %r/... in userMode)
    rel: str  # where it lives inside a generation directory
    mode: int
    owner: str | None  # name or decimal id; None: root
    group: str | None  # name or decimal id; None: the owner's primary group
    restart_units: tuple[str, ...]
    reload_units: tuple[str, ...]
    file: str  # the age file, read as given (never under --root)
    seal: str | None = None  # a systemd credential's id: stored as systemd-creds encrypts it
    format: str = "binary"  # one of FORMATS: what the age file holds
    key_path: tuple[str, ...] = ()  # the key taken from the document; (): the whole file
    document: str = ""  # the rules secret whose age file this is ("": the name)

    @property
    def kind(self) -> str:
        return "secret"

    @property
    def key(self) -> str:
        """Identity across generations (secrets and templates may share names)."""
        return f"secret:{self.name}"


class Template(NamedTuple):
    """A template: the same as a secret's, and its text with placeholders."""

    name: str
    path: str
    rel: str
    mode: int
    owner: str | None
    group: str | None
    restart_units: tuple[str, ...]
    reload_units: tuple[str, ...]
    content: str  # text with placeholders

    @property
    def kind(self) -> str:
        return "template"

    @property
    def key(self) -> str:
        return f"template:{self.name}"


# What secrets and templates share: where the file goes, and who reads it.
Entry = Secret | Template

_NO_PLACEHOLDERS: Mapping[str, str] = MappingProxyType({})


class Manifest(NamedTuple):
    secrets: tuple[Secret, ...]
    templates: tuple[Template, ...] = ()
    placeholders: Mapping[str, str] = _NO_PLACEHOLDERS  # secret name -> text
    mount_point: str = DEFAULT_MOUNT_POINT
    symlink_path: str = DEFAULT_SYMLINK_PATH
    keep_generations: int = DEFAULT_KEEP_GENERATIONS
    use_tmpfs: bool = False
    identity_paths: tuple[str, ...] = ()
    user_mode: bool = False
    restart_list_path: str | None = None
    reload_list_path: str | None = None
    systemd_creds: str | None = None  # the program sealing credentials, when a secret is sealed
    platform: str = LINUX  # LINUX or DARWIN

    @property
    def entries(self) -> tuple[Entry, ...]:
        return (*self.secrets, *self.templates)


def load(path: str) -> Manifest:
    """Read and parse a manifest file; every problem is a ManifestError."""
    try:
        data = read_regular(path, MANIFEST_LIMIT)
    except OSError as err:
        raise ManifestError(f"{path}: cannot read manifest: {err.strerror}") from err
    return parse(data, path)


def parse(data: bytes | str, source: str = "manifest") -> Manifest:
    try:
        doc = fastjson.loads(data)
    except UnicodeDecodeError as err:
        raise ManifestError(f"{source}: not UTF-8 JSON") from err
    except RecursionError as err:
        raise ManifestError(f"{source}: bad JSON: nested too deeply") from err
    except ValueError as err:
        import json  # loaded already: fastjson hands bad JSON to it

        if isinstance(err, json.JSONDecodeError):
            raise ManifestError(
                f"{source}: bad JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from err
        # a number of more than 4300 digits
        raise ManifestError(f"{source}: bad JSON: {str(err).split(';')[0]}") from err
    try:
        return _Parser().manifest(doc)
    except ManifestError as err:
        raise ManifestError(f"{source}: {err}") from err


def expand_runtime_dir(manifest: Manifest, runtime_dir: str | None) -> Manifest:
    """Replace a leading %r in every path (userMode) with $XDG_RUNTIME_DIR."""
    if not manifest.user_mode:
        return manifest
    paths = [
        manifest.mount_point,
        manifest.symlink_path,
        manifest.restart_list_path,
        manifest.reload_list_path,
        *(e.path for e in manifest.entries),
    ]
    runtime_dir = runtime_dir or None  # set but empty: as unset
    if any(p and p.startswith(RUNTIME_DIR_TOKEN) for p in paths):
        if runtime_dir is None:
            raise ManifestError("userMode paths use %r but XDG_RUNTIME_DIR is not set")
        # A relative one would put secrets under the working directory (or,
        # stripped to "", at the file system's root).
        if not runtime_dir.startswith("/") or not runtime_dir.strip("/"):
            raise ManifestError(f"XDG_RUNTIME_DIR {runtime_dir!r} is not an absolute directory")

    def sub(p: str) -> str:
        if runtime_dir is not None and p.startswith(RUNTIME_DIR_TOKEN):
            return runtime_dir.rstrip("/") + p[len(RUNTIME_DIR_TOKEN) :]
        return p

    def sub_opt(p: str | None) -> str | None:
        return None if p is None else sub(p)

    return manifest._replace(
        mount_point=sub(manifest.mount_point),
        symlink_path=sub(manifest.symlink_path),
        restart_list_path=sub_opt(manifest.restart_list_path),
        reload_list_path=sub_opt(manifest.reload_list_path),
        secrets=tuple(s._replace(path=sub(s.path)) for s in manifest.secrets),
        templates=tuple(t._replace(path=sub(t.path)) for t in manifest.templates),
    )


def is_normal_path(text: str) -> bool:
    """Absolute, without empty, "." or ".." parts, printable (the record checks this too)."""
    segments = text.split("/")
    return (
        text.startswith("/")
        and text != "/"
        and text.isprintable()
        and not any(s in {"", ".", ".."} for s in segments[1:])
    )


def is_unit(text: str) -> bool:
    return is_unit_name(text)


def _too_long(text: str, where: str) -> None:
    """Refuse what no file system can hold (ENAMETOOLONG after the switch, else)."""
    encoded = text.encode("utf-8", "surrogatepass")
    if any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise ManifestError(f"{where}: a part of {text[:40]!r}... is longer than {NAME_MAX} bytes")
    if len(encoded) > PATH_MAX:
        raise ManifestError(f"{where}: {text[:40]!r}... is longer than {PATH_MAX} bytes")


def is_name(name: str) -> bool:
    """Relative path of [A-Za-z0-9._-] segments; never '.', '..' or absolute."""
    return is_secret_name(name)


def parse_mode(text: str) -> int | None:
    """An octal permission string ("0400", "640") or None when it is not one."""
    if not (len(text) == 3 or (len(text) == 4 and text[0] == "0")) or not only(text, _OCTAL):
        return None
    return int(text, 8)


class _Parser:
    """One parse; keeps userMode so path checks know whether %r is allowed."""

    user_mode = False
    platform = LINUX

    def manifest(self, doc: Any) -> Manifest:
        obj = _object(doc, "manifest", TOP_KEYS)
        if "version" not in obj:
            raise ManifestError("version: missing (expected 1)")
        version = obj["version"]
        if isinstance(version, bool) or version != VERSION:
            raise ManifestError(f"version: unsupported {version!r} (this nixseal reads 1)")
        self.user_mode = _bool(obj, "userMode", False)
        self.platform = obj.get("platform", LINUX)
        if self.platform not in PLATFORMS:
            raise ManifestError(
                f'platform: expected "linux" or "darwin", got {_shown(self.platform)}'
            )
        mount_point = self.path(obj.get("mountPoint", DEFAULT_MOUNT_POINT), "mountPoint")
        symlink = self.path(obj.get("symlinkPath", DEFAULT_SYMLINK_PATH), "symlinkPath")
        if _within(symlink, mount_point) or _within(mount_point, symlink):
            raise ManifestError(
                f"symlinkPath: {symlink!r} and mountPoint {mount_point!r} must not contain "
                "each other"
            )
        keep = obj.get("keepGenerations", DEFAULT_KEEP_GENERATIONS)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ManifestError(f"keepGenerations: expected an integer >= 0, got {keep!r}")
        identity_paths = tuple(
            _string(p, f"identityPaths[{i}]")
            for i, p in enumerate(_list(obj.get("identityPaths", []), "identityPaths"))
        )
        if "secrets" not in obj:
            raise ManifestError("secrets: missing (expected a list, maybe empty)")
        secrets = tuple(
            self.secret(s, f"secrets[{i}]", symlink)
            for i, s in enumerate(_list(obj["secrets"], "secrets"))
        )
        templates = tuple(
            self.template(t, f"templates[{i}]", symlink)
            for i, t in enumerate(_list(obj.get("templates", []), "templates"))
        )
        placeholders = self.placeholders(obj.get("placeholders", {}), secrets)
        creds = obj.get("systemdCreds")
        systemd_creds = None if creds is None else self.path(creds, "systemdCreds")
        for i, s in enumerate(secrets):
            if s.seal is not None and systemd_creds is None:
                raise ManifestError(
                    f'secrets[{i}].seal: "{s.seal}" needs systemdCreds, which is null'
                )
        lists = {
            key: None if obj.get(key) is None else self.path(obj[key], key)
            for key in ("restartListPath", "reloadListPath")
        }
        manifest = Manifest(
            secrets=secrets,
            templates=templates,
            placeholders=placeholders,
            mount_point=mount_point,
            symlink_path=symlink,
            keep_generations=keep,
            use_tmpfs=_bool(obj, "useTmpfs", False),
            identity_paths=identity_paths,
            user_mode=self.user_mode,
            restart_list_path=lists["restartListPath"],
            reload_list_path=lists["reloadListPath"],
            systemd_creds=systemd_creds,
            platform=self.platform,
        )
        if self.platform == DARWIN:
            _check_darwin(manifest)
        _check_layout(manifest)
        return manifest

    def path(self, value: Any, where: str) -> str:
        text = _string(value, where)
        check = text
        if text.startswith(RUNTIME_DIR_TOKEN):
            if not self.user_mode:
                raise ManifestError(f"{where}: %r is only meaningful with userMode")
            check = "/run/user" + text[len(RUNTIME_DIR_TOKEN) :]
        segments = check.split("/")
        if (
            not check.startswith("/")
            or check == "/"
            or "\0" in check
            or any(s in {"", ".", ".."} for s in segments[1:])
        ):
            raise ManifestError(f"{where}: {text!r} is not a normalized absolute path")
        _too_long(text, where)
        return text

    def entry_common(self, obj: Mapping[str, Any], where: str) -> dict[str, Any]:
        if "name" not in obj:
            raise ManifestError(f"{where}.name: missing")
        name = _string(obj["name"], f"{where}.name")
        if not is_name(name):
            raise ManifestError(f'{where}.name: hostile name "{name}"')
        _too_long(name, f"{where}.name")
        mode_text = _string(obj.get("mode", "0400"), f"{where}.mode")
        mode = parse_mode(mode_text)
        if mode is None:
            raise ManifestError(
                f'{where}.mode: bad mode "{mode_text}" (expected an octal string like "0400")'
            )
        return {
            "name": name,
            "mode": mode,
            "owner": _account(obj.get("owner"), f"{where}.owner"),
            "group": _account(obj.get("group"), f"{where}.group"),
            "restart_units": self.units(obj.get("restartUnits", []), f"{where}.restartUnits"),
            "reload_units": self.units(obj.get("reloadUnits", []), f"{where}.reloadUnits"),
        }

    def units(self, value: Any, where: str) -> tuple[str, ...]:
        if self.platform == DARWIN:
            return _labels(value, where)
        return _units(value, where)

    def place(self, obj: Mapping[str, Any], where: str, default_rel: str, symlink: str) -> Any:
        """(path, rel): a path under symlinkPath is placed there in the generation."""
        if obj.get("path") is None:
            return f"{symlink}/{default_rel}", default_rel
        path = self.path(obj["path"], f"{where}.path")
        if path == symlink:
            raise ManifestError(f"{where}.path: {path!r} is symlinkPath itself")
        if _within(path, symlink):
            return path, path[len(symlink) + 1 :]
        return path, default_rel

    def secret(self, value: Any, where: str, symlink: str) -> Secret:
        obj = _object(value, where, _SECRET_KEYS)
        common = self.entry_common(obj, where)
        if "file" not in obj:
            raise ManifestError(f"{where}.file: missing")
        file = _string(obj["file"], f"{where}.file")
        path, rel = self.place(obj, where, common["name"], symlink)
        seal = obj.get("seal")
        if seal is not None:
            seal = _string(seal, f"{where}.seal")
            # systemd's credential names are file names (a ":" would end the id
            # of LoadCredentialEncrypted=ID:PATH); the modules write these only.
            if not is_segment(seal) or len(seal.encode()) > NAME_MAX:
                raise ManifestError(f"{where}.seal: bad credential name {seal!r}")
        fmt, key_path = _document_key(obj, where)
        document = obj.get("document", common["name"])
        if not isinstance(document, str) or not is_name(document):
            raise ManifestError(f"{where}.document: not a secret name: {document!r}")
        return Secret(
            path=path,
            rel=rel,
            file=file,
            seal=seal,
            format=fmt,
            key_path=key_path,
            document=document,
            **common,
        )

    def template(self, value: Any, where: str, symlink: str) -> Template:
        obj = _object(value, where, _TEMPLATE_KEYS)
        common = self.entry_common(obj, where)
        if "content" not in obj:
            raise ManifestError(f"{where}.content: missing")
        content = obj["content"]
        if not isinstance(content, str):
            raise ManifestError(f"{where}.content: expected a string")
        if not _encodable(content):
            raise ManifestError(f"{where}.content: not valid Unicode (a lone surrogate)")
        path, rel = self.place(obj, where, f"{RENDERED_DIR}/{common['name']}", symlink)
        return Template(path=path, rel=rel, content=content, **common)

    def placeholders(self, value: Any, secrets: tuple[Secret, ...]) -> dict[str, str]:
        obj = _object(value, "placeholders", None)
        names = {s.name for s in secrets}
        result: dict[str, str] = {}
        seen: dict[str, str] = {}
        for name, text in obj.items():
            where = f"placeholders[{fastjson.dumps(name)}]"  # escaped: the key is unchecked
            if name not in names:
                raise ManifestError(f"{where}: no secret of that name")
            if not isinstance(text, str) or not text:
                raise ManifestError(f"{where}: expected a non-empty string")
            if not _encodable(text):
                raise ManifestError(f"{where}: not valid Unicode (a lone surrogate)")
            if text in seen:
                raise ManifestError(f'{where}: same placeholder as secret "{seen[text]}"')
            seen[text] = name
            result[name] = text
        return result


def _document_key(obj: Mapping[str, Any], where: str) -> tuple[str, tuple[str, ...]]:
    """(format, key segments): what a secret takes from its age file."""
    fmt = obj.get("format", "binary")
    if fmt not in FORMATS:
        raise ManifestError(
            f"{where}.format: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})"
        )
    segments = _list(obj.get("key", []), f"{where}.key")
    for i, segment in enumerate(segments):
        _string(segment, f"{where}.key[{i}]")
    if segments and fmt == "binary":
        raise ManifestError(f"{where}.key: a binary file has no keys (format is binary)")
    want = _KEY_LENGTH.get(fmt)
    if segments and want is not None and len(segments) != want:
        raise ManifestError(
            f"{where}.key: a key of a {fmt} document has {want} segments, not {len(segments)}"
        )
    return fmt, tuple(segments)


# ini: section/option; dotenv: the variable's name.
_KEY_LENGTH = {"ini": 2, "dotenv": 1}


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _lists(m: Manifest) -> tuple[tuple[str, tuple[Entry, ...]], ...]:
    return (("secrets", m.secrets), ("templates", m.templates))


def _check_layout(m: Manifest) -> None:
    """No two entries may claim one file, nor a file where another needs a directory."""
    by_rel: dict[str, str] = {}
    by_path: dict[str, str] = {}
    for kind, items in _lists(m):
        for i, e in enumerate(items):
            where = f"{kind}[{i}]"
            if e.rel in by_rel:
                raise ManifestError(f"{where}.path: {e.path!r} collides with {by_rel[e.rel]}")
            if e.path in by_path:
                raise ManifestError(f"{where}.path: {e.path!r} is also {by_path[e.path]}")
            if _within(e.path, m.mount_point):
                raise ManifestError(f"{where}.path: {e.path!r} is inside mountPoint")
            by_rel[e.rel] = f"{where} ({e.name})"
            by_path[e.path] = f"{where} ({e.name})"
    _check_links(m, by_path)
    for rel, owner in by_rel.items():
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in by_rel:
                raise ManifestError(
                    f"{owner}: needs {parent!r} to be a directory, but {by_rel[parent]} is a file"
                )


def _check_links(m: Manifest, by_path: dict[str, str]) -> None:
    """Custom paths get symlinks: nothing may lie inside one, and each link's
    target (relative, up to symlinkPath) must fit in a symlink."""
    import posixpath

    links = {e.path for e in m.entries if not _within(e.path, m.symlink_path)}
    for kind, items in _lists(m):
        for i, e in enumerate(items):
            where = f"{kind}[{i}].path"
            parts = e.path.split("/")
            for n in range(2, len(parts)):
                outer = "/".join(parts[:n])
                if outer in links:
                    raise ManifestError(
                        f"{where}: {e.path!r} is inside the path of {by_path[outer]}, "
                        "which is a symlink"
                    )
            if e.path in links:
                target = posixpath.relpath(f"{m.symlink_path}/{e.rel}", posixpath.dirname(e.path))
                if len(target.encode("utf-8", "surrogatepass")) > PATH_MAX:
                    raise ManifestError(
                        f"{where}: {e.path[:40]!r}... is too deep: its symlink's target would "
                        f"be longer than {PATH_MAX} bytes"
                    )
    for key, path in (("symlinkPath", m.symlink_path), ("mountPoint", m.mount_point)):
        parts = path.split("/")
        for n in range(2, len(parts) + 1):
            if "/".join(parts[:n]) in links:
                raise ManifestError(
                    f"{key}: {path!r} is inside the path of {by_path['/'.join(parts[:n])]}, "
                    "which is a symlink"
                )


def _object(value: Any, where: str, allowed: Set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected an object, got {_kind(value)}")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ManifestError(f"{where}: unknown field {unknown[0]!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected a list, got {_kind(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: expected a non-empty string, got {_kind(value)}")
    # Control characters would let one field print as several lines (or
    # move a terminal's cursor) in an error; lone surrogates (JSON "\ud800")
    # cannot be encoded as a file name. isprintable() rejects both, in C (a
    # regular expression over the surrogate range costs milliseconds to
    # compile, at every boot).
    if not value.isprintable():
        raise ManifestError(f"{where}: unprintable characters are not allowed")
    return value


def _encodable(text: str) -> bool:
    """False for text holding a lone surrogate (JSON can spell one: "\\ud800")."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise ManifestError(f"{key}: expected true or false, got {_kind(value)}")
    return value


def _account(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_ID:
        return str(value)
    if (
        not isinstance(value, str)
        or not _is_account(value)
        or len(value) > 64
        or (value.isdigit() and int(value) > _MAX_ID)
    ):
        raise ManifestError(
            f"{where}: bad user or group {value!r} (a name or a decimal id up to {_MAX_ID})"
        )
    return value


def _is_account(text: str) -> bool:
    """[A-Za-z_][A-Za-z0-9._-]*$? (a user or group name), or a decimal id."""
    if only(text, _DIGITS):
        return True
    stem = text[:-1] if text.endswith("$") else text
    return (
        stem[:1] != ""
        and stem[0] in _ACCOUNT_START
        and (len(stem) == 1 or only(stem[1:], SEGMENT_CHARS))
    )


def _units(value: Any, where: str) -> tuple[str, ...]:
    units = []
    for i, unit in enumerate(_list(value, where)):
        if not isinstance(unit, str) or not is_unit_name(unit):
            raise ManifestError(f"{where}[{i}]: bad unit name {unit!r}")
        units.append(unit)
    return tuple(units)


def _labels(value: Any, where: str) -> tuple[str, ...]:
    labels = []
    for i, label in enumerate(_list(value, where)):
        if not isinstance(label, str) or not is_launchd_label(label):
            raise ManifestError(
                f"{where}[{i}]: bad launchd label {label!r} (on darwin these name launchd jobs, "
                'such as "org.nixos.nginx")'
            )
        labels.append(label)
    return tuple(labels)


def _check_darwin(m: Manifest) -> None:
    """What only Linux has: a tmpfs, and systemd's credentials."""
    if m.use_tmpfs:
        raise ManifestError('useTmpfs: a tmpfs is Linux\'s; platform "darwin" needs false')
    if m.systemd_creds is not None:
        raise ManifestError('systemdCreds: systemd is Linux\'s; platform "darwin" needs null')


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _kind(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
