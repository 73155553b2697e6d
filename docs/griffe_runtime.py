"""A griffe extension for the API reference (mkdocs.yml, mkdocstrings' ``extensions``):
the scikit-learn estimators documented as Python has them at run time.

``fastbp.estimators`` builds its docstrings from shared pieces (``__doc__ =
class_doc(...)``, ``fill``, ``method.__doc__ = ...``, in ``fastbp._estimator_docs``) and
``MLPClassifier``'s signature from ``BaseMLP``'s (``_with_class_weight``): reading the
source, as mkdocstrings does, sees neither. For the classes of the modules below and
their methods, this takes the docstring, and for ``__init__`` the signature, from the
imported objects (which needs scikit-learn, as the estimators do).
"""
import importlib
import inspect

import griffe

MODULES = ("fastbp.estimators", "fastbp._estimator_base")

_KINDS = {inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
          inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
          inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
          inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
          inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword}


def _parameters(function):
    """griffe's Parameters of a function's run-time signature (its annotations are the
    source's text: the modules use ``from __future__ import annotations``)."""
    params = []
    for p in inspect.signature(function).parameters.values():
        empty = inspect.Parameter.empty
        params.append(griffe.Parameter(
            p.name, kind=_KINDS[p.kind],
            annotation=None if p.annotation is empty else str(p.annotation),
            default=None if p.default is empty else repr(p.default)))
    return griffe.Parameters(*params)


def _docstring(obj, runtime):
    doc = inspect.getdoc(runtime)
    if doc and (obj.docstring is None or obj.docstring.value != doc):
        obj.docstring = griffe.Docstring(doc, parent=obj)


class RuntimeDocs(griffe.Extension):
    """Docstrings and ``__init__`` signatures of the estimators from the imported classes."""

    def on_package(self, *, pkg, **kwargs):
        if pkg.name != "fastbp":
            return
        for path in MODULES:
            module = pkg.get_member(path.split(".", 1)[1])
            runtime_module = importlib.import_module(path)
            for name, cls in module.classes.items():
                runtime_cls = getattr(runtime_module, name)
                _docstring(cls, runtime_cls)
                for member_name, member in cls.members.items():
                    if member.is_alias or not member.is_function:
                        continue
                    runtime = inspect.getattr_static(runtime_cls, member_name, None)
                    runtime = getattr(runtime, "__func__", runtime)
                    if member_name == "__init__":
                        member.parameters = _parameters(runtime_cls.__init__)
                    elif callable(runtime):
                        _docstring(member, runtime)
