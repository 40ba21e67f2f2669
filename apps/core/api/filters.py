"""Filter building blocks shared by every list endpoint, hardened so no query string can reach the database badly."""

from __future__ import annotations

import copy
from datetime import UTC

import django_filters
from django import forms
from django.http import QueryDict
from django_filters.fields import IsoDateTimeField

# A comma list longer than this is refused: SQLite limits expression depth (1000) and bound parameters.
MAX_LIST_ITEMS = 100


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC here so an offset that overflows year 1 or 9999 is a 400, not a 500."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("this time is out of range once converted to UTC", code="overflow") from exc


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class CommaListField(forms.CharField):
    """`a,b,c` (or the parameter repeated) as a list of at most MAX_LIST_ITEMS non-blank items."""

    def __init__(self, *args, allowed: set[str] | None = None, **kwargs):
        self.allowed = allowed
        super().__init__(*args, **kwargs)

    def clean(self, value):
        text = super().clean(value)
        if not text:
            return []
        items = list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
        if len(items) > MAX_LIST_ITEMS:
            raise forms.ValidationError("at most %(limit)s values", code="too_many", params={"limit": MAX_LIST_ITEMS})
        if self.allowed is not None:
            unknown = [item for item in items if item not in self.allowed]
            if unknown:
                # User text goes in params, never in the message: django-filter %-formats the message.
                raise forms.ValidationError(
                    "unknown value(s): %(unknown)s; expected one of: %(allowed)s",
                    code="invalid_choice",
                    params={"unknown": ", ".join(unknown), "allowed": ", ".join(sorted(self.allowed))},
                )
        return items


class CommaListFilter(django_filters.Filter):
    """`?state_type=RUNNING,FAILED`: rows whose field is any of the values."""

    field_class = CommaListField

    def __init__(self, *args, choices: list[str] | None = None, **kwargs):
        if choices is not None:
            kwargs["allowed"] = set(choices)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class FilterSet(django_filters.FilterSet):
    """django-filter's FilterSet, cheaper per request: filters are copied shallowly (django-filter deep-copies
    every declared filter on each request, which cost more than the list query itself) and the form class is
    built once per FilterSet class. Filters and their form fields are never mutated after declaration."""

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {}
        for name, declared in self.base_filters.items():
            filter_ = copy.copy(declared)
            filter_.model = queryset.model
            filter_.parent = self
            self.filters[name] = filter_

    def get_form_class(self):
        cls = type(self)
        form_class = cls.__dict__.get("_cached_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            cls._cached_form_class = form_class
        return form_class
