"""
Checking a class or an object against a zope.interface, through decorators.

C{zope.interface.verify} reads a method's own code object, so a method
wrapped by a decorator (as the AGI commands are, by C{_deferred}) shows as
C{(*args, **kwargs)} and passes any signature check. L{verify_class} also
checks the functions under the decorators (C{functools.wraps} keeps them
as C{__wrapped__}): a real method whose parameters drift from the
interface fails, as a fake's would.
"""

from __future__ import annotations

import inspect

from zope.interface import implementer
from zope.interface.interface import Method
from zope.interface.verify import verifyClass, verifyObject


def methods(iface) -> list:
    """The names of the methods C{iface} declares (its bases' included)."""
    return sorted(name for name, description in iface.namesAndDescriptions(all=True)
                  if isinstance(description, Method))


def unwrapped(cls, iface):
    """A class holding C{cls}'s methods of C{iface}, decorators taken off."""
    namespace = {}
    for name in methods(iface):
        method = getattr(cls, name, None)
        if method is not None:
            namespace[name] = inspect.unwrap(method)
    return implementer(iface)(type(f"{cls.__name__}Unwrapped", (), namespace))


def verify_class(iface, cls) -> bool:
    """
    C{cls} declares C{iface} and has its methods with compatible
    signatures, seen through decorators. Raises the C{zope.interface}
    invalid-implementation errors otherwise.
    """
    verifyClass(iface, cls)
    verifyClass(iface, unwrapped(cls, iface))
    return True


def verify_object(iface, obj) -> bool:
    """L{verify_class} of C{obj}'s class, and C{verifyObject} (its attributes too)."""
    verify_class(iface, type(obj))
    return verifyObject(iface, obj)
