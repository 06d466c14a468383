# SPDX-License-Identifier: MIT
"""JSON at the boundary, strict and fast.

Strict, so that what a task receives is what was enqueued: a value JSON
cannot carry (a set, bytes, NaN, an object, a dict key that is not a str)
raises SerializationError before anything is stored. Tuples are arrays and
come back as lists.

Fast, because every task crosses here twice each way: json.dumps and
json.loads run several Python-level frames around the C codec of the
standard library's _json module. Calling that codec directly (the same
objects json builds internally) costs about a fifth as much per call, which
is most of the Python overhead of a no-op task. Without _json (never the
case on CPython) the json module's own functions are used.
"""

import json
import json.decoder
import json.encoder
import json.scanner

from .errors import SerializationError

_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)


def _refuse(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


_c_encoder = json.encoder.c_make_encoder
if _c_encoder is not None:
    _encode = _c_encoder(None, _refuse, json.encoder.encode_basestring, None, ":", ",", False,
                         False, False)

    def _text(value):
        return "".join(_encode(value, 0))
else:  # pragma: no cover
    _text = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                             default=_refuse).encode

_scan = json.scanner.c_make_scanner(json.decoder.JSONDecoder())


def _check_keys(value):
    """Refuses dict keys that json would silently turn into strings."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise TypeError("dict key %r is not a str; JSON object keys are strings"
                                    % (k,))
                if type(item) not in _SCALAR_TYPES:
                    stack.append(item)
        elif isinstance(v, (list, tuple)):
            stack.extend(item for item in v if type(item) not in _SCALAR_TYPES)


def dumps(value, what, name):
    """value as UTF-8 JSON text. A SerializationError says it was the `what`
    ("result", "arguments") of func `name` (str or bytes); the message is
    only built then, as this runs for every task."""
    try:
        if type(value) not in _SCALAR_TYPES:
            _check_keys(value)
        return _text(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        raise SerializationError("%s of %s: %s" % (what, name, exc)) from None


def loads(raw):
    """JSON text (bytes) as a value; ValueError if it is not JSON."""
    text = raw.decode("utf-8")
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except StopIteration:  # leading whitespace, or not JSON: json.loads decides
        pass
    return json.loads(text)
