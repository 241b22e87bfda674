"""Issue 13, point 5: a machine is named by `item_name` (its ASR protected item) or `vm_name`
(the VM), never by an ambiguous `machine` that meant either."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from pydantic import BaseModel

import domain
import starter.report

PACKAGES = (domain, starter.report)


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseModel) and value.__module__ == module.__name__:
                    found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_no_model_names_a_machine_ambiguously() -> None:
    models = _models()
    assert len(models) > 30, "the walk found too few models to mean anything"
    ambiguous = [m.__qualname__ for m in models if "machine" in m.model_fields]
    assert ambiguous == []


def test_a_string_naming_an_item_says_so() -> None:
    loose = [
        m.__qualname__
        for m in _models()
        if "item" in m.model_fields and m.model_fields["item"].annotation is str
    ]
    assert loose == [], "a str field `item` is an item's name: call it item_name"
