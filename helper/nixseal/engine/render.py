"""Templates: placeholders in a template's text replaced by secret values.

Substitution is one pass over the template: a secret whose value happens
to contain another placeholder's text is inserted verbatim, never expanded
again, so no value can pull another secret into a file it was not meant for.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def referenced(content: str, placeholders: Mapping[str, str]) -> list[str]:
    """Names of the secrets whose placeholder occurs in content."""
    return [name for name, text in placeholders.items() if text in content]


def render(content: str, values: Mapping[str, bytes], placeholders: Mapping[str, str]) -> bytes:
    """content with each placeholder replaced by its secret's value (bytes).

    values must hold every name referenced() returns.
    """
    used = {placeholders[name].encode(): values[name] for name in referenced(content, placeholders)}
    raw = content.encode()
    if not used:
        return raw
    # No re (~8 ms of every boot to import): at each step the earliest
    # placeholder, and of those found there the longest, so a placeholder
    # that is a prefix of another loses; the next occurrence of each is kept
    # and searched again only once the scan has passed it.
    parts: list[bytes] = []
    at = 0
    found = {text: raw.find(text) for text in used}
    while True:
        hits = [(where, -len(text), text) for text, where in found.items() if where >= 0]
        if not hits:
            break
        where, _, text = min(hits)
        parts += [raw[at:where], used[text]]
        at = where + len(text)
        for other, seen in found.items():
            if 0 <= seen < at:
                found[other] = raw.find(other, at)
    parts.append(raw[at:])
    return b"".join(parts)
