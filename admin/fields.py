"""Form fields and choices shared by the admin forms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wtforms import SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget


class CheckboxChoices(SelectMultipleField):
    """A multiple choice shown as a list of checkboxes (roles, groups, profile fields)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def options(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """Choices from (value, label) pairs, in the form WTForms wants them (bare tuples are deprecated)."""
    return [SelectChoice(value, label) for value, label in pairs]
