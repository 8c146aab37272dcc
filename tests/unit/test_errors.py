"""The exception tree and the public surface: pickling with attributes, exports, dir().

Exceptions cross process boundaries (worker pools, multiprocessing), so each one must
survive pickle and copy with its message and every attribute. The test builds one instance
of every class in ``pos3lite.errors`` from its signature, so classes added later are held too.
"""

from __future__ import annotations

import builtins
import copy
import inspect
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

import pos3lite
from pos3lite import errors

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def _classes() -> list[type[errors.Pos3liteError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.Pos3liteError)
    ]


def _value_for(param: inspect.Parameter) -> Any:
    note = str(param.annotation)
    if "Sequence" in note or "list" in note:
        return [ValueError("inner failure"), OSError(13, "Permission denied", "/x")]
    if "int" in note:
        return 403
    if "float" in note:
        return 1.5
    return f"v-{param.name}"


def _instance(cls: type[errors.Pos3liteError]) -> errors.Pos3liteError:
    sig = inspect.signature(cls.__init__)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    params = list(sig.parameters.values())[1:]
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return cls(f"{cls.__name__} message")
    for p in params:
        if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.POSITIONAL_ONLY:
            args.append(_value_for(p))
        elif p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = _value_for(p)
    return cls(*args, **kwargs)


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert a.args == b.args
    assert set(vars(a)) == set(vars(b))
    for name, value in vars(a).items():
        other = vars(b)[name]
        if isinstance(value, list) and value and isinstance(value[0], BaseException):
            assert [(type(x), str(x)) for x in value] == [(type(y), str(y)) for y in other]
        else:
            assert other == value, name


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_exception_pickles_with_its_attributes(cls: type[errors.Pos3liteError]) -> None:
    exc = _instance(cls)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        _same(exc, pickle.loads(pickle.dumps(exc, protocol=proto)))
    _same(exc, copy.copy(exc))
    _same(exc, copy.deepcopy(exc))


def test_s3_error_round_trip_keeps_fields_and_message_once() -> None:
    exc = errors.NotFoundError(
        "NoSuchKey", "gone", status=404, request_id="R1", bucket="b", key="k", region="eu-west-1"
    )
    back = pickle.loads(pickle.dumps(exc))
    assert (back.code, back.status, back.bucket, back.key, back.region) == (
        "NoSuchKey",
        404,
        "b",
        "k",
        "eu-west-1",
    )
    assert str(back) == str(exc)
    assert str(back).count("s3://b/k") == 1


def test_remote_not_found_message_not_doubled() -> None:
    exc = errors.RemoteNotFoundError("s3://b/p")
    back = pickle.loads(pickle.dumps(exc))
    assert str(back) == str(exc)
    assert str(back).count("s3://b/p") == 1
    assert isinstance(back, FileNotFoundError)
    assert back.url == "s3://b/p"


def test_transfer_error_keeps_nested_failures() -> None:
    exc = errors.TransferError(
        "Download", [errors.UnsafeKeyError("../x", "dots"), PermissionError(13, "denied")]
    )
    back = pickle.loads(pickle.dumps(exc))
    assert back.operation == "Download"
    assert isinstance(back.failures[0], errors.UnsafeKeyError)
    assert back.failures[0].key == "../x"
    assert isinstance(back.failures[1], PermissionError)


def test_dir_lists_public_names_only() -> None:
    names = dir(pos3lite)
    for private in ("Any", "TYPE_CHECKING", "annotations", "errors", "importlib"):
        assert private not in names
    assert names == sorted(names)
    assert set(names) == set(pos3lite.__all__)
    for name in names:
        assert getattr(pos3lite, name) is not None


def test_every_exception_class_is_exported() -> None:
    for cls in _classes():
        assert cls.__name__ in pos3lite.__all__, cls.__name__
        assert getattr(pos3lite, cls.__name__) is cls


def test_every_exception_in_docs_is_importable() -> None:
    documented = set(re.findall(r"`(\w+Error)`", DOCS.read_text(encoding="utf-8")))
    documented = {name for name in documented if not hasattr(builtins, name)}
    assert {"ConnectError", "ReadTimeoutError", "ChecksumMismatchError"} <= documented
    for name in sorted(documented):
        assert getattr(pos3lite, name) is getattr(errors, name), name
        assert name in pos3lite.__all__
