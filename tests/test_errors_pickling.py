"""errors: every exception class of the package survives pickling, as it must to leave a worker process.

The classes are found by walking every module of the package, so a new exception class is covered
the day it is written. Each is built from sample arguments chosen by its constructor's annotations,
raised from a foreign cause, pickled and unpickled: type, str() and attributes must be the same.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from typing import Any

import pytest

import aggregator
from aggregator.errors import ConfigProblem, ParseError


def _exception_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(aggregator.__path__, "aggregator."):
        if module_info.name == "aggregator.__main__":  # runs the CLI when imported
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


_SAMPLES_BY_ANNOTATION = {
    "str": "sample text",
    "str | None": "sample",
    "int | None": 503,
    "int": 7,
    "float": 2.5,
    "float | None": 30.0,
    "Sequence[str]": ["nantongribao", "all"],
    "Sequence[ConfigProblem]": [ConfigProblem("feeds.toml", 3, "settings.interval", "must be a duration")],
}


def _build(cls: type[BaseException]) -> BaseException:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    arguments: list[Any] = []
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            arguments.append("sample message")
            continue
        annotation = str(parameter.annotation)
        assert annotation in _SAMPLES_BY_ANNOTATION, f"{cls.__name__}.{parameter.name}: add a sample for {annotation}"
        arguments.append(_SAMPLES_BY_ANNOTATION[annotation])
    return cls(*arguments)


EXCEPTION_CLASSES = _exception_classes()


def test_the_walk_finds_the_package_exception_classes() -> None:
    names = {cls.__name__ for cls in EXCEPTION_CLASSES}
    assert {"AggregatorError", "ConfigError", "FetchError", "ParseError", "ItemError", "PublishError",
            "StoreLockedError", "HostDeferredError", "CharsetError", "WorkerError", "PublishFailures"} <= names


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda cls: cls.__name__)
def test_exception_class_pickles_round_trip_with_its_cause(cls: type[BaseException]) -> None:
    error = _build(cls)
    try:
        raise error from ConnectionResetError("peer went away")
    except BaseException as raised:
        error = raised
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert {k: v for k, v in vars(copy).items() if k != "_cause_described"} == vars(error)


def test_an_unpickled_error_still_names_its_cause() -> None:
    try:
        raise ParseError("s", "http://x/", "parse: not JSON") from ValueError("Expecting value")
    except ParseError as raised:
        copy = pickle.loads(pickle.dumps(raised))
    assert str(copy) == "parse: not JSON: ValueError: Expecting value"
    assert (copy.source, copy.url, copy.stage) == ("s", "http://x/", "parse")
