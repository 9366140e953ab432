"""How the grader's test cells reach a student's names without running student code themselves.

The grader runs test cells in its own process; the student's kernel (in its sandbox) only runs
set-up and answer cells. A test cell's student names resolve through ``StudentNamespace``:

* **data** comes across as a copy, encoded as tagged JSON (``encode``/``decode``): ``None``, ``bool``,
  ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``, torch tensors and numpy
  arrays (raw bytes with a dtype from a short list and a checked shape). Nothing is unpickled and
  nothing the student sends is evaluated: ``decode`` only ever builds those types.
* **anything else** is a ``RemoteObject``: a handle whose calls, attributes, items, ``len`` and
  iteration are requests to the kernel (``serve``, which runs there), answered by the same rule. It
  is not data: ``==`` is identity and ``bool()`` raises, so a forged ``__eq__`` or ``__bool__`` in
  the student's object never reaches an ``assert``.

Requests travel as ``execute_request`` messages with one ``user_expression`` (the kernel's reply
carries the answer), on the kernel's own channels: no socket or file of the grader is shared.
"""

from __future__ import annotations

import base64
import builtins
import json
import math
import time

MAX_REPLY_BYTES = 64 * 2**20  # one answer from the kernel; more is an error, not a memory problem of ours
MAX_ITEMS = 100_000  # items one iteration may bring back
MAX_DEPTH = 64
TENSOR_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
NUMPY_KINDS = "biuf"  # bool, int, unsigned, float: never object arrays


class RemoteError(Exception):
    """The student's code raised an exception that is not one of Python's builtin ones."""


class KernelGone(Exception):
    """The student's kernel died or ran out of time; no more calls can be made."""


def _builtin_exception(ename: str, evalue: str) -> Exception:
    cls = getattr(builtins, ename, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, (KeyboardInterrupt, SystemExit)):
        try:
            return cls(evalue)
        except Exception:  # an exception class with other constructor arguments
            pass
    return RemoteError(f"{ename}: {evalue}")


# --------------------------------------------------------------------------- data, both directions

def _tensor_bytes(t) -> tuple[str, bytes]:
    import torch

    t = t.detach().to("cpu").contiguous()
    name = str(t.dtype).replace("torch.", "")
    if name not in TENSOR_DTYPES:
        raise TypeError(f"tensor dtype {name}")
    raw = t.view(torch.int16) if name == "bfloat16" else t
    return name, raw.numpy().tobytes()


def encode(value, handle=None, extra=None, depth: int = 0):
    """``value`` as tagged JSON-able data. A value that is not data goes to ``extra(value)`` (if given,
    it returns a tag or None) and then to ``handle(value)``; without either it is a ``TypeError``."""
    if depth > MAX_DEPTH:
        raise ValueError("data nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list):
        return [encode(v, handle, extra, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, handle, extra, depth + 1) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [encode(v, handle, extra, depth + 1) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, handle, extra, depth + 1) for k, v in value.items()}
        return {"$dict": [[encode(k, handle, extra, depth + 1), encode(v, handle, extra, depth + 1)]
                          for k, v in value.items()]}
    module = type(value).__module__.split(".")[0]
    if module == "torch":
        import torch

        if isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_complex():
            dtype, raw = _tensor_bytes(value)
            return {"$tensor": {"dtype": dtype, "shape": list(value.shape), "data": base64.b64encode(raw).decode(),
                                "grad": bool(value.requires_grad), "param": isinstance(value, torch.nn.Parameter)}}
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype.kind in NUMPY_KINDS:
            arr = np.ascontiguousarray(value)
            return {"$ndarray": {"dtype": arr.dtype.str, "shape": list(arr.shape),
                                 "data": base64.b64encode(arr.tobytes()).decode()}}
        if isinstance(value, np.generic) and value.dtype.kind in NUMPY_KINDS:
            return encode(value.item(), handle, extra, depth)
    if extra is not None:
        tag = extra(value)
        if tag is not None:
            return tag
    if handle is not None:
        return handle(value)
    raise TypeError(f"a {type(value).__name__} is not data")


def _shape(shape, itemsize: int, nbytes: int) -> tuple[int, ...]:
    if not isinstance(shape, list) or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError("bad shape")
    if math.prod(shape) * itemsize != nbytes:
        raise ValueError("shape and data do not agree")
    return tuple(shape)


def decode(data, remote=None, depth: int = 0):
    """Inverse of ``encode`` for what the kernel sends: builds only builtin values, tensors, arrays and
    ``RemoteObject`` handles (through ``remote``); anything unexpected is a ``ValueError``."""
    if depth > MAX_DEPTH:
        raise ValueError("data nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(v, remote, depth + 1) for v in data]
    if type(data) is not dict:
        raise ValueError(f"unexpected {type(data).__name__}")
    if len(data) == 1:
        (tag, body), = data.items()
        if tag == "$float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$bytes" and type(body) is str:
            return base64.b64decode(body, validate=True)
        if tag == "$tuple" and type(body) is list:
            return tuple(decode(v, remote, depth + 1) for v in body)
        if tag == "$set" and type(body) is list:
            return set(decode(v, remote, depth + 1) for v in body)
        if tag == "$dict" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("bad dict item")
                out[decode(pair[0], remote, depth + 1)] = decode(pair[1], remote, depth + 1)
            return out
        if tag == "$tensor" and type(body) is dict:
            return _decode_tensor(body)
        if tag == "$ndarray" and type(body) is dict:
            import numpy as np

            dtype = np.dtype(str(body.get("dtype")))
            if dtype.kind not in NUMPY_KINDS:
                raise ValueError("array dtype not allowed")
            raw = base64.b64decode(str(body.get("data")), validate=True)
            return np.frombuffer(raw, dtype=dtype).reshape(_shape(body.get("shape"), dtype.itemsize, len(raw))).copy()
        if tag == "$handle" and type(body) is dict and remote is not None:
            return RemoteObject(remote, int(body["id"]), str(body.get("type", "object"))[:100],
                                bool(body.get("callable")))
        if tag.startswith("$"):
            raise ValueError(f"unexpected tag {tag[:20]!r}")
    return {k: decode(v, remote, depth + 1) for k, v in data.items()}


def _decode_tensor(body: dict):
    import torch

    dtype = body.get("dtype")
    if dtype not in TENSOR_DTYPES:
        raise ValueError("tensor dtype not allowed")
    raw = base64.b64decode(str(body.get("data")), validate=True)
    torch_dtype = getattr(torch, dtype)
    itemsize = torch.empty((), dtype=torch_dtype).element_size()
    shape = _shape(body.get("shape"), itemsize, len(raw))
    if not raw:
        t = torch.empty(shape, dtype=torch_dtype)
    else:
        t = torch.frombuffer(bytearray(raw), dtype=torch.int16 if dtype == "bfloat16" else torch_dtype)
        t = (t.view(torch.bfloat16) if dtype == "bfloat16" else t).reshape(shape).clone()
    grad = bool(body.get("grad")) and t.is_floating_point()
    if body.get("param"):
        return torch.nn.Parameter(t, requires_grad=grad)
    return t.requires_grad_(grad)


# --------------------------------------------------------------------------- the grader's side

class RemoteObject:
    """A student's object that is not data, living in the student's kernel."""

    __slots__ = ("_remote", "_id", "_type", "_callable")

    def __init__(self, remote: "Remote", handle_id: int, type_name: str, is_callable: bool):
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_id", handle_id)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_callable", is_callable)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):  # protocols (numpy's, torch's, copy's) stay local
            raise AttributeError(name)
        return self._remote.request({"op": "getattr", "id": self._id, "name": name})

    def __setattr__(self, name: str, value) -> None:
        self._remote.request({"op": "setattr", "id": self._id, "name": name, "value": self._remote.encode_arg(value)})

    def __call__(self, *args, **kwargs):
        return self._remote.request({"op": "call", "id": self._id, "args": [self._remote.encode_arg(a) for a in args],
                                     "kwargs": {k: self._remote.encode_arg(v) for k, v in kwargs.items()}})

    def __getitem__(self, key):
        return self._remote.request({"op": "getitem", "id": self._id, "key": self._remote.encode_arg(key)})

    def __len__(self) -> int:
        n = self._remote.request({"op": "len", "id": self._id})
        if type(n) is not int or n < 0:
            raise TypeError("len() of a student object did not give a count")
        return n

    def __iter__(self):
        items = self._remote.request({"op": "iter", "id": self._id})
        if type(items) is not list:
            raise TypeError("iterating a student object did not give a list of items")
        return iter(items)

    def __bool__(self) -> bool:
        raise TypeError(f"the student's {self._type} object is not data: compare one of its values instead")

    def __repr__(self) -> str:
        return f"<student's {self._type}>"


class Remote:
    """The grader's end: sends requests to the student's kernel through ``send(expression, timeout)``
    (which returns the expression's text, or raises ``KernelGone``) and decodes the answers."""

    def __init__(self, send, deadline: float):
        self._send = send
        self.deadline = deadline
        self.set_up_names: dict[int, str] = {}
        self._keep: list = []  # the objects whose ids are in set_up_names stay alive
        self.calls = 0

    def add_set_up(self, namespace: dict) -> None:
        """Remember the objects set-up cells named, to pass them to the student's code by name."""
        for name, value in namespace.items():
            if not name.startswith("__") and id(value) not in self.set_up_names:
                self.set_up_names[id(value)] = name
                self._keep.append(value)

    def request(self, req: dict):
        payload = json.dumps(req, allow_nan=False)
        expression = f"__import__('ftlab.grading_proxy', fromlist=['serve']).serve({payload!r})"
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise KernelGone("the time limit was reached")
        self.calls += 1
        text = self._send(expression, remaining)
        if len(text) > MAX_REPLY_BYTES:
            raise RemoteError("the student's code answered with more data than the grader accepts")
        try:
            reply = json.loads(text)
            error = reply.get("error") if type(reply) is dict else None
            if error is None:
                return decode(reply["value"], self)
            ename, evalue = str(error["ename"])[:100], str(error["evalue"])[:2000]
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise RemoteError(f"the student's kernel sent an answer the grader cannot read ({type(err).__name__})") from None
        raise _builtin_exception(ename, evalue)

    def get(self, name: str):
        return self.request({"op": "get", "name": name})

    def release(self) -> None:
        try:
            self.request({"op": "release"})
        except Exception:
            pass

    def encode_arg(self, value):
        return encode(value, handle=self._reference, extra=_recipe)

    def _reference(self, value):
        if isinstance(value, RemoteObject):
            if value._remote is not self:
                raise TypeError("a student object from another submission")
            return {"$handle": value._id}
        name = self.set_up_names.get(id(value))
        if name is not None:
            return {"$global": name}
        raise TypeError(f"a test passed a {type(value).__name__} to the student's code; pass data, a tokenizer, a "
                        "torch.nn.Linear, a student object, or an object a set-up cell named (exercises/README.md)")


def _recipe(value):
    """Objects the grader sends as instructions to rebuild them: tokenizers, ``torch.nn.Linear``."""
    module = type(value).__module__.split(".")[0]
    if module == "transformers" and hasattr(value, "apply_chat_template") and hasattr(value, "name_or_path"):
        return {"$tokenizer": str(value.name_or_path)}
    if module == "torch":
        import torch

        if type(value) is torch.nn.Linear:
            return {"$linear": {"in": value.in_features, "out": value.out_features,
                                "weight": encode(value.weight), "bias": None if value.bias is None else encode(value.bias)}}
    return None


class StudentNamespace(dict):
    """A test cell's globals: the grader's own names (set-up, tests, builtins) first; then, for names
    the source's answer cells define, the student's, fetched from the kernel each time they are read."""

    def __init__(self, student_names: set[str], remote: Remote | None = None):
        super().__init__(__builtins__=builtins)
        self.student_names = frozenset(student_names)
        self.remote = remote

    def __missing__(self, name: str):
        if hasattr(builtins, name):
            raise KeyError(name)  # exec falls back to the grader's own builtins
        if name in self.student_names and self.remote is not None:
            return self.remote.get(name)
        raise NameError(f"name {name!r} is not defined")


# --------------------------------------------------------------------------- the kernel's side

_handles: dict[int, object] = {}
_tokenizers: dict[str, object] = {}


def _handle(value) -> dict:
    _handles[id(value)] = value
    return {"$handle": {"id": id(value), "type": type(value).__name__, "callable": callable(value)}}


def _kernel_decode(data, depth: int = 0):
    if depth > MAX_DEPTH:
        raise ValueError("data nested too deeply")
    if isinstance(data, list):
        return [_kernel_decode(v, depth + 1) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        (tag, body), = data.items()
        if tag == "$handle":
            return _handles[body]
        if tag == "$global":
            return _user_ns()[body]
        if tag == "$tokenizer":
            if body not in _tokenizers:
                from ftlab.models import load_tokenizer

                _tokenizers[body] = load_tokenizer(body)
            return _tokenizers[body]
        if tag == "$linear":
            import torch

            layer = torch.nn.Linear(body["in"], body["out"], bias=body["bias"] is not None)
            with torch.no_grad():
                layer.weight.copy_(decode(body["weight"]))
                if body["bias"] is not None:
                    layer.bias.copy_(decode(body["bias"]))
            return layer
        if tag in ("$tuple", "$set", "$dict"):
            items = [_kernel_decode(v, depth + 1) for v in body]
            return tuple(items) if tag == "$tuple" else set(items) if tag == "$set" else dict(items)
        if tag.startswith("$"):
            return decode(data)
    return {k: _kernel_decode(v, depth + 1) for k, v in data.items()}


def _user_ns() -> dict:
    from IPython import get_ipython

    return get_ipython().user_ns


class _Reply:
    """The kernel renders a reply (as ``text/plain``) as the JSON itself."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def serve(payload: str) -> _Reply:
    """Answer one request from the grader (runs in the student's kernel)."""
    try:
        req = json.loads(payload)
        op = req["op"]
        target = _handles[req["id"]] if "id" in req else None
        if op == "get":
            ns = _user_ns()
            if req["name"] not in ns:
                raise NameError(f"name {req['name']!r} is not defined")
            value = ns[req["name"]]
        elif op == "getattr":
            value = getattr(target, req["name"])
        elif op == "setattr":
            setattr(target, req["name"], _kernel_decode(req["value"]))
            value = None
        elif op == "call":
            value = target(*_kernel_decode(req["args"]), **_kernel_decode(req["kwargs"]))
        elif op == "getitem":
            value = target[_kernel_decode(req["key"])]
        elif op == "len":
            value = len(target)
        elif op == "iter":
            value = []
            for item in target:
                value.append(item)
                if len(value) > MAX_ITEMS:
                    raise ValueError("too many items")
        elif op == "release":
            _handles.clear()
            value = None
        else:
            raise ValueError(f"unknown request {op!r}")
        reply = {"value": encode(value, handle=_handle)}
    except BaseException as err:  # everything, KeyboardInterrupt included, goes back as the answer
        reply = {"error": {"ename": type(err).__name__, "evalue": str(err)[:2000]}}
    return _Reply(json.dumps(reply, allow_nan=False))
