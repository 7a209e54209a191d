"""CSS selector -> XPath, as the cleaner and html sources evaluate it: a leaf that config and clean both import.

Config validates selectors with the same translation the cleaner later compiles, so a selector `check`
accepts never fails at poll time.
"""

from __future__ import annotations

from cssselect import HTMLTranslator
from cssselect.parser import Attrib, Element
from cssselect.xpath import ExpressionError, XPathExpr


class _FragmentTranslator(HTMLTranslator):
    """cssselect's HTML translation, refusing namespace prefixes (`svg|a`, `[xlink|href]`).

    Item HTML has no namespaces; the XPath of a prefixed name compiles but fails on every item
    ("Undefined namespace prefix"), so it is refused with the other invalid selectors instead.
    """

    def xpath_element(self, selector: Element) -> XPathExpr:
        _refuse_namespace(selector.namespace)
        return super().xpath_element(selector)

    def xpath_attrib(self, selector: Attrib) -> XPathExpr:
        _refuse_namespace(selector.namespace)
        return super().xpath_attrib(selector)


def _refuse_namespace(namespace: str | None) -> None:
    if namespace and namespace != "*":
        raise ExpressionError(f"namespace prefix {namespace!r} is not supported: item HTML has no namespaces")


_TRANSLATOR = _FragmentTranslator()


def css_to_xpath(selector: str) -> str:
    """One CSS selector (group) as an XPath over the descendants of the fragment root."""
    return str(_TRANSLATOR.css_to_xpath(selector, prefix="descendant::"))
