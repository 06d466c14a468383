# SPDX-License-Identifier: MIT
"""Settings: the C library's omniq_settings_t with Python units.

Durations are seconds (int or float), as in the OMNIQ_* variables. The
defaults are the C library's own (omniq_settings_init), and
Settings.from_env() reads the environment through omniq_settings_from_env,
so the C and Python sides agree on every name, default and parsing rule.
Ranges are checked by the C library when the store is opened.

`clock` is for tests: a callable returning the current time in seconds since
the epoch (like time.time). The queue then decides what is due, when a
retry may run and when a lease expires by it, so a test moves time instead
of sleeping. It is called from the library's threads.
"""

import ctypes
import enum
import os
import time

from . import _lib
from .errors import ConfigError
from .models import seconds


class BackendType(str, enum.Enum):
    """The embedded stores: one SQLite file, or a directory of files."""

    SQLITE = "sqlite"
    FILE = "file"


def _ms(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("Settings.%s must be a number of seconds, not %r" % (name, value))
    if value != value or value < 0:
        raise ConfigError("Settings.%s must be 0 or more seconds (got %r)" % (name, value))
    return int(round(value * 1000))


def _choice(name, value, choices, hint=""):
    if isinstance(value, enum.Enum):
        value = value.value
    key = str(value)
    for c in choices:
        if c.lower() == key.lower():
            return c
    raise ConfigError("Settings.%s: %r is not one of %s%s"
                      % (name, value, ", ".join(choices), hint))


class Settings:
    """Where the queue lives and its defaults. Keyword arguments only; any
    left out takes the C library's default."""

    _FIELDS = ("backend", "db_url", "base_dir", "default_timeout", "default_max_retries",
               "lease", "result_ttl", "serializer", "log_level", "log_format", "retry_base",
               "retry_cap", "fsync", "task_ttl", "crash_budget", "clock")

    def __init__(self, **fields):
        unknown = set(fields) - set(self._FIELDS)
        if unknown:
            raise TypeError("Settings() got unknown field(s): %s" % ", ".join(sorted(unknown)))
        defaults = _from_struct(_c_defaults())
        for name in self._FIELDS:
            setattr(self, name, fields.get(name, getattr(defaults, name, None)))
        self.validate()

    @classmethod
    def from_env(cls):
        """Defaults overridden by the OMNIQ_* variables that are set. A bad
        value raises ConfigError naming the variable."""
        s = _c_defaults()
        if _lib.lib.omniq_settings_from_env(ctypes.byref(s)) != _lib.OK:
            raise ConfigError(_lib.errmsg(None) or "bad OMNIQ_* variable")
        return _from_struct(s)

    def validate(self):
        """Checks types and names; raises ConfigError. The C library checks
        ranges when the store is opened."""
        self.backend = BackendType(_choice("backend", self.backend, [b.value for b in BackendType]))
        self.serializer = _choice(
            "serializer", self.serializer, list(_lib.SERIALIZERS),
            " (OmniQ stores JSON so that C and Python programs share a queue: "
            "msgspec and cloudpickle are not available)")
        self.log_level = _choice("log_level", "ERROR" if str(self.log_level).upper() == "CRITICAL"
                                 else self.log_level, list(_lib.LOG_LEVELS))
        self.log_format = _choice("log_format", self.log_format, list(_lib.LOG_FORMATS))
        if self.default_timeout is None:
            self.default_timeout = 0
        for name in ("default_timeout", "lease", "result_ttl", "retry_base", "retry_cap",
                     "task_ttl"):
            _ms(name, getattr(self, name))
        for name in ("default_max_retries", "crash_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError("Settings.%s must be an int >= 0 (got %r)" % (name, value))
        self.base_dir = os.fspath(self.base_dir)
        if self.db_url is not None:
            self.db_url = os.fspath(self.db_url)
        self.fsync = bool(self.fsync)
        if self.clock is not None and not callable(self.clock):
            raise ConfigError("Settings.clock must be callable (seconds since the epoch)")

    def now(self):
        """The current time by this store's clock, in seconds since the epoch."""
        return self.clock() if self.clock is not None else time.time()

    def __repr__(self):
        shown = ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._FIELDS
                          if n != "clock" or self.clock is not None)
        return "Settings(%s)" % shown

    def _to_struct(self):
        """The C struct, and the ctypes callback to keep alive beside it."""
        self.validate()
        s = _c_defaults()
        for name, size in (("backend", _lib.NAME_MAX), ("db_url", _lib.PATH_MAX),
                           ("base_dir", _lib.PATH_MAX)):
            value = getattr(self, name)
            raw = (value.value if isinstance(value, enum.Enum) else (value or "")).encode()
            if len(raw) >= size:
                raise ConfigError("Settings.%s is longer than %d bytes" % (name, size - 1))
            setattr(s, name, raw)
        s.default_timeout_ms = _ms("default_timeout", self.default_timeout)
        s.default_max_retries = self.default_max_retries
        s.lease_ms = _ms("lease", self.lease)
        s.result_ttl_ms = _ms("result_ttl", self.result_ttl)
        s.retry_base_ms = _ms("retry_base", self.retry_base)
        s.retry_cap_ms = _ms("retry_cap", self.retry_cap)
        s.serializer = _lib.SERIALIZERS[self.serializer]
        s.log_level = _lib.LOG_LEVELS[self.log_level]
        s.log_format = _lib.LOG_FORMATS[self.log_format]
        s.fsync = int(self.fsync)
        s.task_ttl_ms = _ms("task_ttl", self.task_ttl)
        s.crash_budget = self.crash_budget
        keep = None
        if self.clock is not None:
            keep = _lib.CLOCK_FN(_clock_trampoline(self.clock))
            s.clock_fn = keep
        return s, keep


def _clock_trampoline(clock):
    def now_ms(_userdata):
        try:
            return int(clock() * 1000)
        except BaseException:  # a C thread cannot take an exception: use real time
            return int(time.time() * 1000)
    return now_ms


def _c_defaults():
    s = _lib.SettingsStruct()
    _lib.lib.omniq_settings_init(ctypes.byref(s))
    return s


def _from_struct(s):
    settings = Settings.__new__(Settings)
    names = {v: k for k, v in _lib.SERIALIZERS.items()}
    levels = {v: k for k, v in _lib.LOG_LEVELS.items()}
    formats = {v: k for k, v in _lib.LOG_FORMATS.items()}
    settings.backend = BackendType(s.backend.decode())
    settings.db_url = s.db_url.decode() or None
    settings.base_dir = s.base_dir.decode()
    settings.default_timeout = seconds(s.default_timeout_ms)
    settings.default_max_retries = s.default_max_retries
    settings.lease = seconds(s.lease_ms)
    settings.result_ttl = seconds(s.result_ttl_ms)
    settings.serializer = names[s.serializer]
    settings.log_level = levels[s.log_level]
    settings.log_format = formats[s.log_format]
    settings.retry_base = seconds(s.retry_base_ms)
    settings.retry_cap = seconds(s.retry_cap_ms)
    settings.fsync = bool(s.fsync)
    settings.task_ttl = seconds(s.task_ttl_ms)
    settings.crash_budget = s.crash_budget
    settings.clock = None
    return settings
