"""The grader's proxy to a student's kernel (ftlab/grading_proxy.py), without a kernel: the kernel's
``serve`` is called in-process on a dict standing for the student's namespace."""

import json
import math

import numpy as np
import pytest
import torch

import ftlab.grading_proxy as gp


def test_data_round_trips_exactly():
    value = {"a": [1, 2.5, None, True, "é"], 3: (1, (2,)), (1, 2): {4, 5}, "$x": b"\x00\xff",
             "nan": float("nan"), "inf": -math.inf, "big": 2**80}
    back = gp.decode(json.loads(json.dumps(gp.encode(value), allow_nan=False)))
    assert back.keys() == value.keys() and back[3] == (1, (2,)) and back[(1, 2)] == {4, 5} and back["$x"] == b"\x00\xff"
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf and back["big"] == 2**80 and back["a"] == value["a"]
    for t in (torch.randn(3, 4), torch.arange(6).reshape(2, 3), torch.tensor([True, False]), torch.empty(0, 5),
              torch.randn(4, dtype=torch.bfloat16), torch.tensor(2.5)):
        got = gp.decode(json.loads(json.dumps(gp.encode(t))))
        assert got.dtype == t.dtype and got.shape == t.shape and torch.equal(got, t)
    p = torch.nn.Parameter(torch.randn(2, 2))
    got = gp.decode(json.loads(json.dumps(gp.encode(p))))
    assert isinstance(got, torch.nn.Parameter) and got.requires_grad and torch.equal(got, p)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(gp.decode(gp.encode(a)), a) and gp.decode(gp.encode(np.int64(7))) == 7


@pytest.mark.parametrize("data", [
    {"$ndarray": {"dtype": "|O", "shape": [1], "data": ""}},  # object arrays would unpickle
    {"$tensor": {"dtype": "float32", "shape": [3], "data": "AAAA"}},  # shape and bytes disagree
    {"$tensor": {"dtype": "complex64", "shape": [], "data": ""}},
    {"$pickle": "gASVAAAAAAAAAAA="},
    {"$handle": {"id": 1}},  # a handle only means something to a grader's Remote
])
def test_decode_builds_only_data(data):
    with pytest.raises(ValueError):
        gp.decode(data)


@pytest.fixture
def kernel(monkeypatch):
    """A Remote whose requests are answered by serve() on ``student`` (the student's namespace)."""
    student = {}
    monkeypatch.setattr(gp, "_user_ns", lambda: student)

    def send(expression, timeout):
        payload = expression.split(".serve(", 1)[1][:-1]
        return repr(gp.serve(eval(payload)))  # the kernel's text/plain rendering of the reply

    remote = gp.Remote(send, deadline=float("inf"))
    return student, remote


def test_names_resolve_to_the_graders_own_then_only_declared_student_names(kernel):
    student, remote = kernel
    student.update(len=lambda x: 99, answer=41, helper=lambda: 1, torch="not torch")
    ns = gp.StudentNamespace({"answer", "len", "missing"}, remote)
    ns["torch"] = torch  # a set-up name: the grader's own object
    exec("a = len([1, 2]); b = answer + 1; t = torch.zeros(1)", ns)
    assert ns["a"] == 2 and ns["b"] == 42 and isinstance(ns["t"], torch.Tensor)
    with pytest.raises(NameError):
        exec("helper()", ns)  # not defined by the source's answer cells: never fetched
    with pytest.raises(NameError, match="missing"):
        exec("missing", ns)  # declared, but the student's kernel has none


def test_student_objects_are_handles_that_cannot_pass_an_assert(kernel):
    student, remote = kernel

    class Liar:
        def __eq__(self, other):
            return True

        def __bool__(self):
            return True

    class Layer(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base, self.A = base, torch.nn.Parameter(torch.zeros(2, 3))

        def forward(self, x):
            return self.base(x) + x @ self.A.T

    student.update(liar=Liar(), Layer=Layer, make_liar=Liar)
    ns = gp.StudentNamespace({"liar", "Layer", "make_liar"}, remote)
    liar = ns["liar"]
    assert isinstance(liar, gp.RemoteObject) and liar != 1 and not (liar == 1)
    with pytest.raises(TypeError):
        assert liar
    with pytest.raises(TypeError):
        liar + 1
    base = torch.nn.Linear(3, 2)
    layer = ns["Layer"](base)  # the Linear goes across as shape and weights
    x = torch.randn(4, 3)
    assert torch.allclose(layer(x), base(x))
    layer.A = torch.nn.Parameter(torch.ones(2, 3))  # assigning changes the student's object
    assert torch.equal(layer.A, torch.ones(2, 3))
    copy = layer.A
    copy.data.fill_(5)  # a copy: the student's object is unchanged
    assert torch.equal(layer.A, torch.ones(2, 3))
    assert sum(p.numel() for p in layer.parameters() if p.requires_grad) == 6 + 8


def test_errors_come_back_as_builtin_exceptions_or_remote_errors(kernel):
    student, remote = kernel

    def stub():
        raise NotImplementedError()

    def interrupt():
        raise KeyboardInterrupt()

    class Custom(Exception):
        pass

    def custom():
        raise Custom("x")

    student.update(stub=stub, interrupt=interrupt, custom=custom, obj=object())
    ns = gp.StudentNamespace(set(student), remote)
    with pytest.raises(NotImplementedError):
        ns["stub"]()
    with pytest.raises(gp.RemoteError, match="KeyboardInterrupt"):
        ns["interrupt"]()
    with pytest.raises(gp.RemoteError, match="Custom"):
        ns["custom"]()
    with pytest.raises(TypeError, match="pass data"):
        ns["stub"](object())  # an authoring error: not data, not a set-up name


def test_a_kernel_that_answers_nonsense_gives_a_remote_error():
    for text in ("True", "not json", '{"value": {"$ndarray": {"dtype": "|O", "shape": [], "data": ""}}}', "[1]"):
        remote = gp.Remote(lambda e, t, text=text: text, deadline=float("inf"))
        with pytest.raises(gp.RemoteError):
            remote.get("x")
    with pytest.raises(gp.KernelGone):
        gp.Remote(lambda e, t: "{}", deadline=0).get("x")
