from datetime import timedelta

from django import forms
from django.utils import timezone

from finance.models import Source

DEFAULT_DAYS = 30
MAX_DAYS = 366


class DashboardFilterForm(forms.Form):
    """Date range, sources and a headline search; bad values fall back to the defaults with a message."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    sources = forms.ModelMultipleChoiceField(queryset=Source.objects.all(), required=False,
                                             widget=forms.SelectMultiple(attrs={"size": 4}))
    q = forms.CharField(required=False, max_length=200, label="Search headlines")

    def clean(self):
        data = super().clean()
        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        data["start"], data["end"] = start, end
        return data

    def window(self) -> dict:
        """start, end, source_ids and q: the cleaned values, or the defaults when the form is invalid."""
        if self.is_valid():
            d = self.cleaned_data
            return {"start": d["start"], "end": d["end"], "source_ids": [s.pk for s in d["sources"]], "q": d["q"]}
        end = timezone.localdate()
        return {"start": end - timedelta(days=DEFAULT_DAYS - 1), "end": end, "source_ids": [], "q": ""}
