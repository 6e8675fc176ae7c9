"""Pickled ``.npy`` files (Bullying10K) decoded by a small opcode interpreter that can only build numpy arrays.

Bullying10K's authors saved each recording with ``np.save`` of a list of event packets, which makes an
object array whose ``.npy`` body is a pickle. A pickle is a program: its ``GLOBAL`` / ``STACK_GLOBAL``
opcodes name any importable callable and ``REDUCE`` calls it with arguments from the file, so the
standard loader runs whatever an untrusted file asks for.

Why this reader is safe: it does not use the standard library's unpickler at all (the package never
imports that module). :func:`unpickle_arrays` interprets the pickle opcodes itself, and only the subset
``np.save`` writes (protocols 2 to 4): constants, strings, bytes, tuples, lists, dicts, the memo,
``GLOBAL``/``STACK_GLOBAL``, ``REDUCE`` and ``BUILD``. A ``GLOBAL`` resolves only names in
:data:`ALLOWED` — numpy's ``_reconstruct`` (wrapped: plain ndarrays of a small initial shape),
``ndarray`` (a non-callable marker for that wrapper), ``dtype``, ``scalar`` and ``_codecs.encode``
restricted to latin-1 and ``bytes()`` without arguments (how protocol 2 writes bytes) — and refuses
every other name with an error naming the file, before anything is called. ``REDUCE`` calls only those
objects, and ``BUILD`` only calls ``__setstate__`` of a numpy array or dtype (numpy's own checked
deserialisers). Everything else — ``NEWOBJ``, ``INST``, ``OBJ``, extension codes, persistent ids,
unknown opcodes — is refused. Lengths are checked against the bytes present before slicing.

The project's rule "no pickle" still holds for everything eventshard writes; this module is the only
place that reads one, and only for this dataset's recordings.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from tokenize import TokenError
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from .events import FormatError

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own array reconstructor
_SCALAR = np.int64(0).__reduce__()[0]
MAX_ELEMENTS = 1 << 16
"""Largest shape ``_reconstruct`` may be asked for (numpy's own pickles ask for ``(0,)``; the data comes later)."""
MAX_DEPTH = 2
"""Object arrays may hold arrays (packets), which may not hold object arrays again."""


class _NdarrayType:
    """What the pickle gets for ``numpy.ndarray``: a marker :func:`_reconstruct` accepts, not a callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray (marker)"


NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ndarrays of a small initial shape only (no allocation bombs)."""
    if subtype is not NDARRAY:
        raise ValueError(f"_reconstruct of {subtype!r}: only numpy.ndarray is allowed")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, int) and 0 <= d for d in dims) or float(np.prod(dims, dtype=np.float64)) > MAX_ELEMENTS:
        raise ValueError(f"_reconstruct shape {shape!r}: not a small initial shape")
    return _RECONSTRUCT(np.ndarray, dims, dtype)


def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError("_codecs.encode: only (str, 'latin1') is allowed")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as protocol-2 pickles write ``b""``: no arguments only."""
    if args:
        raise ValueError("bytes(...): only the empty call is allowed")
    return b""


ALLOWED: dict[tuple[str, str], Any] = {("numpy", "ndarray"): NDARRAY, ("numpy", "dtype"): np.dtype,
                                       ("_codecs", "encode"): _latin1, ("__builtin__", "bytes"): _empty_bytes,
                                       ("builtins", "bytes"): _empty_bytes}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    ALLOWED[(_mod, "scalar")] = _SCALAR
_CALLABLE = {id(v) for v in ALLOWED.values() if v is not NDARRAY}

_MARK = object()


class _Refused(Exception):
    """Raised inside the interpreter; turned into a :class:`FormatError` naming the file and offset."""


class _Machine:
    """The interpreter's state: input, position, stack, mark stack and memo."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Refused(f"needs {n} bytes, {len(self.data) - self.pos} left (truncated)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise _Refused("unterminated text argument")
        out = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return out

    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _Refused("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _Refused("no mark on the stack")
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at - 1 :]  # the items and the mark itself
        return items

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _Refused("stack underflow")
        return self.stack[-1]

    def mark(self) -> None:
        self.stack.append(_MARK)
        self.marks.append(len(self.stack))

    def find(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"refused: the pickle asks for {module}.{name}, not a numpy array "
                           "(only numpy array reconstruction is allowed)") from None

    def reduce(self) -> None:
        args = self.pop()
        func = self.pop()
        if id(func) not in _CALLABLE or not isinstance(args, tuple):
            raise _Refused(f"refused: REDUCE of {func!r}")
        with warnings.catch_warnings():  # numpy's own complaints about odd arguments refuse the file too
            warnings.simplefilter("error")
            try:
                self.stack.append(func(*args))
            except Warning as exc:
                raise _Refused(f"refused: {func!r}{args!r}: {exc}") from None

    def build(self) -> None:
        state = self.pop()
        obj = self.top()
        if not (type(obj) is np.ndarray or isinstance(obj, np.dtype)):
            raise _Refused(f"refused: BUILD of a {type(obj).__name__}")
        obj.__setstate__(state)

    def setitems(self, items: list[Any]) -> None:
        d = self.top()
        if not isinstance(d, dict) or len(items) % 2:
            raise _Refused("SETITEMS without a dict or with an odd count")
        for k in range(0, len(items), 2):
            d[items[k]] = items[k + 1]

    def append(self, items: list[Any]) -> None:
        lst = self.top()
        if not isinstance(lst, list):
            raise _Refused("APPEND to something not a list")
        lst.extend(items)

    def memo_get(self, key: int) -> None:
        if key not in self.memo:
            raise _Refused(f"memo key {key} not set")
        self.stack.append(self.memo[key])

    def memo_put(self, key: int) -> None:
        self.memo[key] = self.top()


def _const(value: Any) -> Callable[[_Machine], None]:
    return lambda m: m.stack.append(value)


def _push(read: Callable[[_Machine], Any]) -> Callable[[_Machine], None]:
    return lambda m: m.stack.append(read(m))


def _tuple(n: int) -> Callable[[_Machine], None]:
    def op(m: _Machine) -> None:
        items = [m.pop() for _ in range(n)][::-1]
        m.stack.append(tuple(items))

    return op


def _signed(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


def _long(m: _Machine, width: int) -> int:
    n = m.uint(width)
    if n > 64:
        raise _Refused(f"integer of {n} bytes")
    return _signed(m.take(n))


def _text(m: _Machine, width: int) -> str:
    return m.take(m.uint(width)).decode("utf-8", "surrogatepass")


def _dict(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append({})
    m.setitems(items)


def _setitem(m: _Machine) -> None:
    value = m.pop()
    key = m.pop()
    m.setitems([key, value])


def _stack_global(m: _Machine) -> None:
    name, module = m.pop(), m.pop()
    if not isinstance(name, str) or not isinstance(module, str):
        raise _Refused("STACK_GLOBAL of non-strings")
    m.stack.append(m.find(module, name))


OPCODES: dict[int, Callable[[_Machine], None]] = {
    0x80: lambda m: m.take(1),  # PROTO
    0x95: lambda m: m.take(8),  # FRAME: the length only
    ord("("): _Machine.mark,
    ord("0"): lambda m: m.pop(),
    ord("1"): lambda m: m.pop_mark(),
    ord("2"): lambda m: m.stack.append(m.top()),
    ord("N"): _const(None),
    0x88: _const(True),
    0x89: _const(False),
    ord("J"): _push(lambda m: _signed(m.take(4))),
    ord("K"): _push(lambda m: m.uint(1)),
    ord("M"): _push(lambda m: m.uint(2)),
    0x8A: _push(lambda m: _long(m, 1)),
    0x8B: _push(lambda m: _long(m, 4)),
    ord("G"): _push(lambda m: struct.unpack(">d", m.take(8))[0]),
    0x8C: _push(lambda m: _text(m, 1)),
    ord("X"): _push(lambda m: _text(m, 4)),
    0x8D: _push(lambda m: _text(m, 8)),
    ord("C"): _push(lambda m: m.take(m.uint(1))),
    ord("B"): _push(lambda m: m.take(m.uint(4))),
    0x8E: _push(lambda m: m.take(m.uint(8))),
    0x96: _push(lambda m: bytearray(m.take(m.uint(8)))),
    ord("U"): _push(lambda m: m.take(m.uint(1))),  # protocol-2 str of Python 2: kept as bytes
    ord("T"): _push(lambda m: m.take(m.uint(4))),
    ord(")"): _const(()),
    0x85: _tuple(1),
    0x86: _tuple(2),
    0x87: _tuple(3),
    ord("t"): lambda m: m.stack.append(tuple(m.pop_mark())),
    ord("]"): lambda m: m.stack.append([]),
    ord("l"): lambda m: m.stack.append(m.pop_mark()),
    ord("a"): lambda m: m.append([m.pop()]),
    ord("e"): lambda m: m.append(m.pop_mark()),
    ord("}"): lambda m: m.stack.append({}),
    ord("d"): _dict,
    ord("s"): _setitem,
    ord("u"): lambda m: m.setitems(m.pop_mark()),
    ord("q"): lambda m: m.memo_put(m.uint(1)),
    ord("r"): lambda m: m.memo_put(m.uint(4)),
    0x94: lambda m: m.memo_put(len(m.memo)),
    ord("h"): lambda m: m.memo_get(m.uint(1)),
    ord("j"): lambda m: m.memo_get(m.uint(4)),
    ord("c"): lambda m: m.stack.append(m.find(m.line(), m.line())),
    0x93: _stack_global,
    ord("R"): _Machine.reduce,
    ord("b"): _Machine.build,
}
_NAMES = {0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", ord("o"): "OBJ", ord("i"): "INST", 0x82: "EXT1", 0x83: "EXT2",
          0x84: "EXT4", ord("P"): "PERSID", ord("Q"): "BINPERSID"}


def unpickle_arrays(data: bytes, name: str, base: int = 0) -> Any:
    """Run the pickle in ``data`` with the restricted interpreter; the value it leaves (see the module docstring).

    Raises
    ------
    FormatError
        Naming ``name`` and the byte offset (``base`` + position in ``data``) of the refused or damaged opcode.
    """
    m = _Machine(bytes(data))
    while True:
        at = m.pos
        if at >= len(m.data):
            raise FormatError(name, base + at, "pickle ends without STOP (truncated)")
        code = m.data[at]
        m.pos += 1
        if code == ord("."):
            if len(m.stack) != 1 or m.stack[0] is _MARK:
                raise FormatError(name, base + at, "pickle stops with a malformed stack")
            return m.stack[0]
        op = OPCODES.get(code)
        if op is None:
            what = _NAMES.get(code, f"0x{code:02x}")
            raise FormatError(name, base + at, f"refused: pickle opcode {what} is not allowed")
        try:
            op(m)
        except _Refused as exc:
            raise FormatError(name, base + at, str(exc)) from None
        except FormatError:
            raise
        except Exception as exc:  # numpy's own deserialisers on damaged states, bad str/bytes, bad arguments
            raise FormatError(name, base + at, f"damaged pickle ({type(exc).__name__}: {exc})") from None


def _check(obj: Any, name: str, depth: int = 0) -> None:
    """The value is an array whose objects are arrays (or numpy scalars), nothing else."""
    if not isinstance(obj, np.ndarray):
        raise FormatError(name, None, f"the pickle holds {type(obj).__name__}, not a numpy array")
    if obj.dtype.hasobject:
        if depth >= MAX_DEPTH or obj.dtype != np.dtype(object):
            raise FormatError(name, None, "nested object arrays are not event packets")
        for item in obj.reshape(-1):
            if not isinstance(item, np.ndarray | np.generic):
                raise FormatError(name, None, f"an element is a {type(item).__name__}, not an array")
            if isinstance(item, np.ndarray):
                _check(item, name, depth + 1)


def load_pickled_npy(data: bytes | bytearray | memoryview, name: str) -> np.ndarray:
    """The array stored in a ``.npy`` file; an object array's pickled body goes through :func:`unpickle_arrays`.

    A ``.npy`` without objects is read by numpy without pickle. Raises :class:`FormatError` naming the
    file for a refused name or opcode (a hostile file), a damaged header or pickle, or a value that is
    not an array of arrays.
    """
    raw = bytes(data)
    f = io.BytesIO(raw)
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f)  # numpy's literal parser, no eval
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, TokenError, UnicodeDecodeError, KeyError,
            IndexError, MemoryError, OverflowError, RecursionError) as exc:  # numpy's header parser on bad bytes
        raise FormatError(name, None, f"not a .npy file ({type(exc).__name__}: {exc})") from None
    if not dtype.hasobject:
        try:
            return np.load(io.BytesIO(raw))
        except (ValueError, OSError, EOFError, TypeError, MemoryError, OverflowError) as exc:
            raise FormatError(name, None, f"not a readable .npy array ({exc})") from None
    obj = unpickle_arrays(raw[f.tell():], name, f.tell())
    _check(obj, name)
    return obj
