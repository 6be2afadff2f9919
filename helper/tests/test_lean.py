"""nixseal.util.lean's stand-ins behave as typing.NamedTuple and contextlib's
contextmanager and suppress do, for what nixseal declares with them."""

from __future__ import annotations

import contextlib
import pickle
import typing

import pytest

from nixseal.util import lean


def _declare(base: type) -> type:
    class Point(base):  # type: ignore[misc,valid-type]
        """A point."""

        x: int
        y: str = "y"
        z: tuple[int, ...] = ()

        @property
        def both(self) -> str:
            return f"{self.x}{self.y}"

        @classmethod
        def origin(cls) -> Point:
            return cls(0)

        def shifted(self, by: int) -> Point:
            return self._replace(x=self.x + by)

    return Point


OURS, THEIRS = _declare(lean.NamedTuple), _declare(typing.NamedTuple)


def test_not_typing_at_run_time() -> None:
    assert lean.NamedTuple is not typing.NamedTuple
    assert lean.contextmanager is not contextlib.contextmanager


@pytest.mark.parametrize(
    "use",
    [
        lambda P: tuple(P(1)),
        lambda P: tuple(P(1, "a", (2,))),
        lambda P: tuple(P(x=3, z=(1,))),
        lambda P: repr(P(1, "a")).replace(P.__qualname__, "P"),
        lambda P: P(1) == P(1) and P(1) != P(2) and P(1) == (1, "y", ()),
        lambda P: hash(P(1)) == hash((1, "y", ())),
        lambda P: P(1).both,
        lambda P: tuple(P.origin()),
        lambda P: tuple(P(1).shifted(2)),
        lambda P: P._fields,
        lambda P: P._field_defaults,
        lambda P: P(1)._asdict(),
        lambda P: tuple(P._make([1, "b", ()])),
        lambda P: P.__doc__,
        lambda P: P.__match_args__,
        lambda P: isinstance(P(1), tuple),
        lambda P: P(1)[0] + len(P(1)),
        lambda P: sorted([P(2), P(1)])[0].x,
    ],
)
def test_a_named_tuple_is_the_same(use: typing.Callable[[type], object]) -> None:
    assert use(OURS) == use(THEIRS)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda P: P(),  # a field without a default, missing
        lambda P: P(1, "a", (), 4),  # too many
        lambda P: P(1, w=2),  # an unknown field
        lambda P: P(1)._replace(w=2),
        lambda P: P._make([1]),
        lambda P: setattr(P(1), "x", 2),  # immutable
    ],
)
def test_the_same_mistakes_fail_the_same_way(wrong: typing.Callable[[type], object]) -> None:
    with pytest.raises((TypeError, ValueError, AttributeError)) as theirs:
        wrong(THEIRS)
    with pytest.raises(type(theirs.value)):
        wrong(OURS)


def test_a_default_before_a_field_without_one_is_refused() -> None:
    with pytest.raises(TypeError):

        class Bad(lean.NamedTuple):
            a: int = 1
            b: int  # type: ignore[misc]


class Pickled(lean.NamedTuple):
    a: int
    b: bytes = b""


def test_it_pickles_as_a_tuple_does() -> None:
    value = Pickled(1, b"x")
    assert pickle.loads(pickle.dumps(value)) == value
    assert type(pickle.loads(pickle.dumps(value))) is Pickled


def _managers(cm: typing.Callable[..., typing.Any]) -> dict[str, typing.Any]:
    log: list[str] = []

    @cm
    def managed(value: int) -> typing.Iterator[int]:
        log.append("enter")
        try:
            yield value
        except KeyError:
            log.append("swallowed")
        finally:
            log.append("exit")

    return {"managed": managed, "log": log}


@pytest.mark.parametrize("raise_", [None, KeyError, ValueError, StopIteration])
def test_a_context_manager_runs_as_contextlib_s(raise_: type[BaseException] | None) -> None:
    outcomes = []
    for cm in (lean.contextmanager, contextlib.contextmanager):
        made = _managers(cm)
        got: object = None
        try:
            with made["managed"](5) as value:
                got = value
                if raise_ is not None:
                    raise raise_("x")
        except BaseException as err:
            got = (got, type(err).__name__)
        outcomes.append((got, made["log"]))
    assert outcomes[0] == outcomes[1]


def test_a_generator_that_does_not_yield_or_stop_fails_as_contextlib_s() -> None:
    def never() -> typing.Iterator[None]:
        return
        yield

    def twice() -> typing.Iterator[None]:
        yield
        yield

    for gen in (never, twice):
        with pytest.raises(RuntimeError) as theirs, contextlib.contextmanager(gen)():
            pass
        with pytest.raises(RuntimeError) as ours, lean.contextmanager(gen)():
            pass
        assert str(ours.value) == str(theirs.value)


def test_suppress_swallows_what_it_names_only() -> None:
    with lean.suppress(KeyError, OSError):
        raise FileNotFoundError
    with pytest.raises(ValueError), lean.suppress(KeyError):
        raise ValueError
