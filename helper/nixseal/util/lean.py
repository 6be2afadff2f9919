"""typing.NamedTuple and contextlib's contextmanager and suppress, for the
boot path, without importing typing or contextlib.

`nixseal install` runs at every boot and switch. Importing typing costs it
about 15 ms and contextlib about 4 ms (with the collections and functools
they pull in), more than the work of a one-secret install. Type checkers
see the standard library's own names (the TYPE_CHECKING branch), so every
class and function declared with these is checked exactly as with them;
at run time these stand-ins behave the same for what nixseal uses: fields
from annotations with trailing defaults, methods, properties and
classmethods in the body, _replace, _fields, equality, hashing, repr and
pickling as a tuple's. tests/test_lean.py holds them to the originals.

Modules on the boot path write ``TYPE_CHECKING = False`` rather than
importing it from typing: type checkers treat a name TYPE_CHECKING as true.
"""

from __future__ import annotations

TYPE_CHECKING = False

__all__ = ["NamedTuple", "contextmanager", "suppress"]

if TYPE_CHECKING:
    from contextlib import contextmanager, suppress
    from typing import NamedTuple
else:
    from _operator import itemgetter as _itemgetter

    _tuple_new = tuple.__new__

    def _replace(self, **changes):
        result = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise ValueError(f"Got unexpected field names: {list(changes)!r}")
        return result

    def _repr(self):
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def _asdict(self):
        return dict(zip(self._fields, self, strict=True))

    def _getnewargs(self):
        return tuple(self)

    def _build(name, ns):
        fields = tuple(ns.get("__annotations__", {}))
        defaults = tuple(ns[f] for f in fields if f in ns)
        if any(f in ns for f in fields[: len(fields) - len(defaults)]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        for f in fields:
            if f.startswith("_"):
                raise ValueError(f"{name}: field names cannot start with an underscore: {f!r}")
        body = {k: v for k, v in ns.items() if k not in fields}
        args = ", ".join(fields)
        # One compiled constructor per class, as collections.namedtuple makes:
        # creating an instance is then a single tuple.__new__.
        space = {"_tuple_new": _tuple_new}
        packed = f"({args},)" if fields else "()"
        source = f"def __new__(_cls, {args}):\n    return _tuple_new(_cls, {packed})"
        exec(source, space)  # noqa: S102 (built from the class's identifiers only)
        new = space["__new__"]
        new.__defaults__ = defaults or None
        new.__qualname__ = f"{ns.get('__qualname__', name)}.__new__"

        def make(cls, iterable):
            result = _tuple_new(cls, iterable)
            if len(result) != len(fields):
                raise TypeError(f"expected {len(fields)} arguments, got {len(result)}")
            return result

        body.update(
            __slots__=(),
            __new__=new,
            __repr__=body.get("__repr__", _repr),
            __getnewargs__=_getnewargs,
            __match_args__=fields,
            _fields=fields,
            _field_defaults={f: ns[f] for f in fields if f in ns},
            _make=classmethod(make),
            _replace=_replace,
            _asdict=_asdict,
        )
        for i, f in enumerate(fields):
            body[f] = property(_itemgetter(i), doc=f"Alias for field number {i}")
        return type(name, (tuple,), body)

    class _NamedTupleMeta(type):
        def __new__(mcls, name, bases, ns):
            if ns.get("_is_base"):
                return super().__new__(mcls, name, bases, ns)
            if bases != (NamedTuple,):
                raise TypeError(f"{name}: a NamedTuple derives from NamedTuple alone")
            return _build(name, ns)

    class NamedTuple(metaclass=_NamedTupleMeta):
        _is_base = True

    class _GeneratorContextManager:
        __slots__ = ("gen",)

        def __init__(self, gen):
            self.gen = gen

        def __enter__(self):
            try:
                return next(self.gen)
            except StopIteration:
                raise RuntimeError("generator didn't yield") from None

        def __exit__(self, typ, value, traceback):
            if typ is None:
                try:
                    next(self.gen)
                except StopIteration:
                    return False
                raise RuntimeError("generator didn't stop")
            if value is None:
                value = typ()
            try:
                self.gen.throw(value)
            except StopIteration as exc:
                return exc is not value
            except RuntimeError as exc:
                if exc is value or (isinstance(value, StopIteration) and exc.__cause__ is value):
                    value.__traceback__ = traceback
                    return False
                raise
            except BaseException as exc:
                if exc is not value:
                    raise
                exc.__traceback__ = traceback
                return False
            raise RuntimeError("generator didn't stop after throw()")

    def contextmanager(func):
        def helper(*args, **kwds):
            return _GeneratorContextManager(func(*args, **kwds))

        helper.__name__ = func.__name__
        helper.__qualname__ = func.__qualname__
        helper.__doc__ = func.__doc__
        helper.__wrapped__ = func
        return helper

    class suppress:
        __slots__ = ("_exceptions",)

        def __init__(self, *exceptions):
            self._exceptions = exceptions

        def __enter__(self):
            return None

        def __exit__(self, typ, value, traceback):
            return typ is not None and issubclass(typ, self._exceptions)
