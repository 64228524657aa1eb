"""Form fields and choices shared by the admin forms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wtforms import IntegerField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from core.converters import parse_int


class CheckboxChoices(SelectMultipleField):
    """A multiple choice shown as a list of checkboxes (roles, groups, profile fields)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AsciiIntegerField(IntegerField):
    """A whole number typed with the digits 0-9 only.

    WTForms' IntegerField calls `int()`, which takes "１２" (full-width digits) and numbers no column holds; this
    field reports both as a field error instead.
    """

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        self.data = parse_int(str(valuelist[0]).strip())
        if self.data is None:
            raise ValueError(self.gettext("Enter a whole number using the digits 0-9."))


def options(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """Choices from (value, label) pairs, in the form WTForms wants them (bare tuples are deprecated)."""
    return [SelectChoice(value, label) for value, label in pairs]
