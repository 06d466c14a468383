# SPDX-License-Identifier: MIT
"""Crossing the boundary: a call's arguments to JSON text (see _json.py),
callables to the names workers find them by (and back), and time
arguments to milliseconds."""

import datetime
import importlib
import inspect
import sys

from . import _json
from .models import to_ms


def dumps_call(name, args, kwargs):
    """The args and kwargs JSON texts of one call of `name`."""
    return (_json.dumps(list(args), "arguments", name) if args else b"[]",
            _json.dumps(kwargs, "keyword arguments", name) if kwargs else b"{}")


def task_id(value):
    """A task id as the library takes it."""
    if not isinstance(value, str):
        raise TypeError("a task id is a str, not %r" % (value,))
    return value.encode()


# ---- callables and their names ---------------------------------------------

_names = {}


def func_name(func):
    """The name a worker imports func by: "module.qualname". A str is taken
    as that name already."""
    if isinstance(func, str):
        if not func:
            raise ValueError("func is an empty string")
        return func
    try:
        return _names[func]
    except (KeyError, TypeError):
        pass
    if not callable(func):
        raise TypeError("func must be a callable or a 'module.qualname' string, not %r" % (func,))
    if inspect.ismethod(func) and not inspect.isclass(func.__self__):
        raise TypeError("%r is bound to an instance; a worker can only import module-level "
                        "functions, classes' static and class methods" % (func,))
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname:
        raise TypeError("%r has no __module__/__qualname__; pass its 'module.qualname' as a "
                        "string" % (func,))
    if "<" in qualname:
        raise TypeError("%s.%s is a lambda or a nested function; a worker can only import "
                        "module-level callables" % (module, qualname))
    name = "%s.%s" % (module, qualname)
    if len(_names) > 4096:
        _names.clear()
    try:
        _names[func] = name
    except TypeError:  # unhashable callable object
        pass
    return name


class ResolveError(LookupError):
    """A func name that does not lead to a callable."""


def resolve(name, allowed=None):
    """The callable named "module.qualname": the longest importable prefix
    is the module, the rest attributes (never another module: a name cannot
    reach os.system through a module that imported os). `allowed` (module
    names or package prefixes) limits the names a worker may run; None
    allows any."""
    parts = name.split(".")
    if len(parts) < 2 or not all(parts):
        raise ResolveError("'%s' is not a module.qualname" % name)
    if allowed is not None and not any(name.startswith(a + ".") for a in allowed):
        raise ResolveError("'%s' is not in the modules this worker may run (%s)"
                           % (name, ", ".join(allowed)))
    for i in range(len(parts) - 1, 0, -1):
        modname = ".".join(parts[:i])
        module = sys.modules.get(modname)
        if module is None:
            try:
                module = importlib.import_module(modname)
            except ModuleNotFoundError as exc:
                if exc.name and (modname == exc.name or modname.startswith(exc.name + ".")):
                    continue  # not a module: a shorter prefix may be
                raise ResolveError("importing '%s' failed: %s" % (modname, exc)) from exc
            except Exception as exc:
                raise ResolveError("importing '%s' failed: %s: %s"
                                   % (modname, type(exc).__name__, exc)) from exc
        obj = module
        for attr in parts[i:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ResolveError("'%s' has no attribute '%s'"
                                   % (getattr(obj, "__name__", modname), attr)) from None
            if inspect.ismodule(obj):
                raise ResolveError("'%s' reaches module '%s' through an attribute of '%s'"
                                   % (name, obj.__name__, modname))
        if not callable(obj):
            raise ResolveError("'%s' is not callable" % name)
        return obj
    raise ResolveError("no module named '%s'" % parts[0])


# ---- times ---------------------------------------------------------------------


def eta_ms(eta):
    """An aware datetime as ms since the epoch; None is 0 (due now)."""
    return 0 if eta is None else time_ms("eta", eta)


def time_ms(name, when):
    """An aware datetime (the argument `name`) as ms since the epoch."""
    if not isinstance(when, datetime.datetime):
        raise TypeError("%s must be a datetime, not %r" % (name, when))
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("%s must be timezone-aware (e.g. datetime.now(timezone.utc) + "
                         "timedelta(minutes=5)); a naive datetime %s is ambiguous" % (name, when))
    return to_ms(when)


def duration_ms(name, value):
    """Seconds (int or float) or a timedelta as whole milliseconds."""
    if isinstance(value, datetime.timedelta):
        ms = value // datetime.timedelta(milliseconds=1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            raise ValueError("%s is NaN" % name)
        ms = int(round(value * 1000))
    else:
        raise TypeError("%s must be seconds (int or float) or a timedelta, not %r"
                        % (name, value))
    if ms < 0:
        raise ValueError("%s must not be negative (got %r)" % (name, value))
    return ms
