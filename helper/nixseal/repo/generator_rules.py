"""A secret's `generator` in the rules file: each kind's keys, parsed for
rules.py (whose parser this is a part of, so that errors name the file,
the table and the key in the same way). How the outputs map to files and
which secrets a value is made from are Rules' (outputs_of, derived_from).
"""

from __future__ import annotations

import re
from typing import Any

from nixseal.errors import RulesError
from nixseal.models.repo import Generator, GeneratorKind

GENERATOR_KINDS = tuple(k.value for k in GeneratorKind)
# Kinds whose output size is a choice; the key kinds have a fixed size.
SIZED_KINDS = tuple(k.value for k in GeneratorKind if k.sized)

# The keys of a generator table besides kind, by kind.
GENERATOR_KEYS: dict[str, tuple[str, ...]] = {
    "password": ("length",),
    "hex": ("length",),
    "base64": ("length",),
    "ssh-ed25519": (),
    "age": (),
    "wireguard": (),
    "htpasswd": ("password", "user", "public"),
    "ca": ("days",),
    "cert": ("ca", "names", "days"),
    "command": ("command", "inputs", "prompts", "outputs", "public"),
}
# Kinds whose value has a public half, committed as <name>.pub.
KEY_PAIR_KINDS = ("ssh-ed25519", "age", "wireguard", "ca", "cert")
_DNS_NAME = re.compile(
    r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
# Output and prompt names: they become file names.
_WORD = re.compile(r"[A-Za-z0-9_-]+")


class GeneratorParser:
    """The generator part of rules._Parser."""

    where: str

    def fail(self, table: str, key: str | None, msg: str) -> RulesError:
        raise NotImplementedError

    def generator(self, table: str, value: Any) -> Generator | None:
        if value is None:
            return None
        kinds = ", ".join(GENERATOR_KINDS)
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, dict):
            raise self.fail(table, "generator", f"must be a kind ({kinds}) or a table")
        # A table with a command is a command generator; kind may be left out.
        kind = value.get("kind", "command" if "command" in value else None)
        if kind not in GENERATOR_KINDS:
            raise self.fail(table, "generator", f"unknown kind {kind!r} (expected {kinds})")
        allowed = GENERATOR_KEYS[kind]
        for k in value:
            if k == "length" and kind not in SIZED_KINDS:
                raise self.fail(table, "generator.length", f"{kind} keys have a fixed size")
            if k != "kind" and k not in allowed:
                expected = ", ".join(("kind", *allowed))
                raise self.fail(
                    table, f"generator.{k}", f"unknown key for a {kind} generator ({expected})"
                )
        length = value.get("length")
        if length is not None and (
            isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 4096
        ):
            raise self.fail(table, "generator.length", "must be an integer from 1 to 4096")
        gen = Generator(GeneratorKind(kind), length)
        if kind == "htpasswd":
            return self.htpasswd(table, value, gen)
        if kind in ("ca", "cert"):
            return self.x509(table, value, gen)
        if kind == "command":
            return self.command(table, value, gen)
        return gen

    def secret_ref(self, table: str, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(table, key, "must be the name of a secret")
        from nixseal.repo.rules import check_secret_name  # rules.py imports this module

        check_secret_name(value, f"{self.where}: [{table}] {key}")
        return value

    def word_list(self, table: str, key: str, value: Any) -> tuple[str, ...]:
        """Names of outputs or prompts: letters, digits, - and _, no repeats."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, 'must be a list of names, e.g. ["private", "public"]')
        for v in value:
            if not _WORD.fullmatch(v):
                raise self.fail(table, key, f"bad name {v!r}: use A-Z a-z 0-9 _ -")
        if len(set(value)) != len(value):
            raise self.fail(table, key, "names a value twice")
        return tuple(value)

    def htpasswd(self, table: str, value: dict[str, Any], gen: Generator) -> Generator:
        if "password" not in value:
            raise self.fail(
                table, "generator.password", "missing: the secret holding the password to hash"
            )
        password = self.secret_ref(table, "generator.password", value["password"])
        user = value.get("user")
        if not isinstance(user, str) or not user or ":" in user or "\n" in user:
            raise self.fail(table, "generator.user", "must be a user name without ':'")
        public = value.get("public", False)
        if not isinstance(public, bool):
            raise self.fail(table, "generator.public", "must be true or false")
        return gen._replace(inputs=(password,), user=user, public=("hash",) if public else ())

    def x509(self, table: str, value: dict[str, Any], gen: Generator) -> Generator:
        days = value.get("days")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500
        ):
            raise self.fail(table, "generator.days", "must be an integer from 1 to 36500")
        gen = gen._replace(days=days)
        if gen.kind is GeneratorKind.CA:
            return gen
        if "ca" not in value:
            raise self.fail(table, "generator.ca", "missing: the secret of the signing CA")
        ca = self.secret_ref(table, "generator.ca", value["ca"])
        names = value.get("names")
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and _DNS_NAME.fullmatch(n) for n in names)
        ):
            raise self.fail(
                table, "generator.names", 'must be a list of DNS names, e.g. ["web1.example"]'
            )
        return gen._replace(inputs=(ca,), names=tuple(dict.fromkeys(names)))

    def command(self, table: str, value: dict[str, Any], gen: Generator) -> Generator:
        command = value.get("command")
        if not isinstance(command, str) or not command:
            raise self.fail(
                table, "generator.command", "missing: a script's path in the repository"
            )
        parts = command.split("/")
        if command.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise self.fail(
                table,
                "generator.command",
                f"{command!r} must be a path relative to the rules file's directory, without '..'",
            )
        inputs = value.get("inputs", [])
        if not isinstance(inputs, list):
            raise self.fail(table, "generator.inputs", "must be a list of secret names")
        refs = tuple(dict.fromkeys(self.secret_ref(table, "generator.inputs", i) for i in inputs))
        prompts = self.word_list(table, "generator.prompts", value.get("prompts", []))
        if "outputs" not in value:
            raise self.fail(
                table, "generator.outputs", 'missing: the files it writes, e.g. ["value"]'
            )
        outputs = self.word_list(table, "generator.outputs", value["outputs"])
        public = self.word_list(table, "generator.public", value.get("public", []))
        for p in public:
            if p not in outputs:
                raise self.fail(table, "generator.public", f"{p!r} is not one of outputs")
        if len(public) == len(outputs):
            raise self.fail(table, "generator.outputs", "needs a secret output (one not in public)")
        return gen._replace(
            command=command, inputs=refs, prompts=prompts, outputs=outputs, public=public
        )
