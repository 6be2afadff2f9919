"""nixseal.util.events writes the lines the admin CLI's structlog writes,
in both formats, so `nixseal install` looks the same without structlog."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from nixseal.util import events, log

_NAMES = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda n: n not in ("event", "level", "timestamp")
)
_VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=8), max_size=3),
    st.floats(allow_nan=False, allow_infinity=False),
)
_TIME = re.compile(r'"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"')


def _both(
    fmt: str, bound: dict[str, Any], level: str, event: str, fields: dict[str, Any]
) -> tuple[str, str]:
    lines = []
    for lean in (False, True):
        out = io.StringIO()
        log.configure(fmt, 1, out, lean=lean)
        getattr(log.get_logger().bind(**bound), level)(event, **fields)
        lines.append(out.getvalue())
    log.configure("console", 0)
    return lines[0], lines[1]


@given(
    fmt=st.sampled_from(log.LOG_FORMATS),
    level=st.sampled_from(list(events.LEVELS)),
    event=st.text(min_size=1, max_size=30),
    bound=st.dictionaries(_NAMES, _VALUES, max_size=3),
    fields=st.dictionaries(_NAMES, _VALUES, max_size=5),
)
# blank events, which structlog trims (found by hypothesis)
@example(fmt="console", level="debug", event=" ", bound={}, fields={})
@example(fmt="console", level="info", event="x ", bound={}, fields={"a": "b"})
def test_the_same_lines_as_structlog(
    fmt: str, level: str, event: str, bound: dict[str, Any], fields: dict[str, Any]
) -> None:
    with_structlog, lean = _both(fmt, bound, level, event, fields)
    if fmt == "json":  # the same but for the instant
        with_structlog, lean = (_TIME.sub('"timestamp": "T"', x) for x in (with_structlog, lean))
        assert json.loads(lean)["event"] == event
    assert lean == with_structlog


def test_levels_below_the_minimum_are_dropped() -> None:
    out = io.StringIO()
    log.configure("console", -1, out, lean=True)
    logger = log.get_logger()
    logger.info("quiet")
    logger.warning("loud", n=1)
    log.configure("console", 0)
    assert out.getvalue() == "[warning  ] loud n=1\n"


def test_json_timestamps_are_utc_with_microseconds() -> None:
    line = events.json_line("info", "x", {})
    assert _TIME.search(line), line
