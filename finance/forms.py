"""Forms of the news upload: the file and where its articles go, then which column holds which field."""

from zoneinfo import ZoneInfo

from django import forms
from django.template.defaultfilters import filesizeformat

from finance import services

# Zones offered for published times written without an offset; UTC first, then by region.
TIMEZONE_CHOICES = [
    ("UTC", "UTC"),
    ("America/New_York", "America/New_York"),
    ("America/Chicago", "America/Chicago"),
    ("America/Los_Angeles", "America/Los_Angeles"),
    ("America/Sao_Paulo", "America/Sao_Paulo"),
    ("Europe/London", "Europe/London"),
    ("Europe/Dublin", "Europe/Dublin"),
    ("Europe/Paris", "Europe/Paris"),
    ("Europe/Berlin", "Europe/Berlin"),
    ("Europe/Zurich", "Europe/Zurich"),
    ("Europe/Stockholm", "Europe/Stockholm"),
    ("Africa/Johannesburg", "Africa/Johannesburg"),
    ("Asia/Dubai", "Asia/Dubai"),
    ("Asia/Kolkata", "Asia/Kolkata"),
    ("Asia/Singapore", "Asia/Singapore"),
    ("Asia/Hong_Kong", "Asia/Hong_Kong"),
    ("Asia/Shanghai", "Asia/Shanghai"),
    ("Asia/Tokyo", "Asia/Tokyo"),
    ("Australia/Sydney", "Australia/Sydney"),
]
FIELD_LABELS = {"title": "Title", "body": "Body", "url": "URL", "published_at": "Published at"}


class ArticleCsvUploadForm(forms.Form):
    source = forms.CharField(
        max_length=200, label="Source",
        widget=forms.TextInput(attrs={"list": "finance-sources", "autocomplete": "off",
                                      "placeholder": "e.g. Harbor Wire"}),
        help_text="Where the articles come from. A new name adds a source.",
    )
    timezone = forms.ChoiceField(
        choices=TIMEZONE_CHOICES, initial="UTC", label="Time zone for times without one",
        help_text="A time such as 2026-03-02 14:30 is read in this zone; times with Z or an offset keep theirs.",
    )
    file = forms.FileField(label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = (
            f"Up to {filesizeformat(services.uploads.CSV_MAX_BYTES)}, with a header row. You choose the columns next."
        )

    def clean_source(self):
        name = " ".join(self.cleaned_data["source"].split())
        if not name:
            raise forms.ValidationError("Name the source the articles come from.")
        return name

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > services.uploads.CSV_MAX_BYTES:
            raise forms.ValidationError(
                f"{upload.name} is {filesizeformat(upload.size)}; the limit is "
                f"{filesizeformat(services.uploads.CSV_MAX_BYTES)}. Split it into smaller files."
            )
        return upload

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.cleaned_data["timezone"])


class ArticleCsvMappingForm(forms.Form):
    """Which column of the uploaded file holds each field; the title is needed, each column is used once."""

    upload = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, columns: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        column_choices = [(name, name) for name in columns]
        self.fields["title"] = forms.ChoiceField(
            label="Title", choices=[("", "Choose a column"), *column_choices],
            error_messages={"required": "Choose the column that holds the title."},
            help_text="The headline of each article.",
        )
        optional = {
            "body": ("None", "The text of the article; ticker detection and sentiment read it too."),
            "url": ("None", "A link to the article (http or https)."),
            "published_at": ("None: date every article now", "When it was published, e.g. 2026-03-02T14:30:00Z."),
        }
        for name, (none_label, help_text) in optional.items():
            self.fields[name] = forms.ChoiceField(label=FIELD_LABELS[name], choices=[("", none_label), *column_choices],
                                                  required=False, help_text=help_text)

    def clean(self):
        cleaned = super().clean()
        used: dict[str, str] = {}
        for name in services.CSV_FIELDS:
            column = cleaned.get(name)
            if not column:
                continue
            if column in used:
                self.add_error(name, f"“{column}” is already the {FIELD_LABELS[used[column]].lower()} column; "
                                     "use each column once.")
            else:
                used[column] = name
        return cleaned

    @property
    def mapping(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in services.CSV_FIELDS if self.cleaned_data.get(name)}


class FeedSourceForm(forms.Form):
    name = forms.CharField(max_length=200, label="Source name")
    feed_url = forms.URLField(max_length=200, label="Feed address (RSS or Atom)", assume_scheme="https")

    def clean_feed_url(self):
        url = self.cleaned_data["feed_url"]
        if not url.startswith(("http://", "https://")):
            raise forms.ValidationError("Use an http:// or https:// address.")
        return url


class FeedUploadForm(forms.Form):
    source = forms.CharField(max_length=200, label="Source name", help_text="Articles are filed under this source")
    file = forms.FileField(label="Feed file (.xml, .rss, .atom)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from finance.feeds import FEED_MAX_BYTES

        self.fields["file"].help_text = f"RSS or Atom, up to {filesizeformat(FEED_MAX_BYTES)}."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        from finance.feeds import FEED_MAX_BYTES

        if upload.size > FEED_MAX_BYTES:
            raise forms.ValidationError(
                f"This file is {filesizeformat(upload.size)}; feeds up to {filesizeformat(FEED_MAX_BYTES)} are read.")
        return upload


class WatchlistForm(forms.Form):
    name = forms.CharField(max_length=100)
    symbols = forms.CharField(label="Tickers", widget=forms.TextInput(attrs={"placeholder": "NRVB, KSTR, $HLVM"}),
                              help_text="Symbols separated by commas or spaces", required=False)

    def symbol_list(self) -> list[str]:
        return self.cleaned_data["symbols"].replace(",", " ").split()


class ReportScheduleForm(forms.Form):
    watchlist = forms.ModelChoiceField(queryset=None)
    frequency = forms.ChoiceField(choices=[("daily", "Daily"), ("weekly", "Weekly (Mondays)")])
    time_of_day = forms.TimeField(initial="07:00", widget=forms.TimeInput(attrs={"type": "time"}))
    timezone = forms.ChoiceField(choices=TIMEZONE_CHOICES, initial="UTC")
    email = forms.BooleanField(required=False, initial=True, label="Email it to me")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        from finance.models import Watchlist

        self.fields["watchlist"].queryset = Watchlist.objects.filter(owner=owner)


class ReportNowForm(forms.Form):
    watchlist = forms.ModelChoiceField(queryset=None)
    frequency = forms.ChoiceField(choices=[("daily", "Yesterday"), ("weekly", "The last 7 days")], label="Period")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        from finance.models import Watchlist

        self.fields["watchlist"].queryset = Watchlist.objects.filter(owner=owner)


class CompanyForm(forms.Form):
    """Add or change a company: symbol A–Z0-9.- (≤10, stored upper-case, unique), name, sector, one alias a line."""

    symbol = forms.CharField(max_length=20, widget=forms.TextInput(attrs={"autocomplete": "off",
                                                                          "placeholder": "e.g. NRVB"}),
                             help_text="Up to 10 letters, digits, dots or hyphens; stored in capitals.")
    name = forms.CharField(max_length=200)
    sector = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"list": "finance-sectors",
                                                                           "autocomplete": "off"}),
                             help_text="Choose an existing sector or type a new one.")
    aliases = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                              help_text="Other names the news uses, one per line (e.g. Norvale).")

    def __init__(self, *args, company=None, **kwargs):
        self.company = company
        if company is not None and "initial" not in kwargs:
            kwargs["initial"] = {"symbol": company.symbol, "name": company.name, "sector": company.sector,
                                 "aliases": "\n".join(company.aliases)}
        super().__init__(*args, **kwargs)

    def clean_symbol(self):
        from finance.models import Company
        from finance.services.companies import CompanyError, symbol_clean

        try:
            symbol = symbol_clean(self.cleaned_data["symbol"])
        except CompanyError as error:
            raise forms.ValidationError(str(error)) from None
        clash = Company.objects.filter(symbol=symbol)
        if self.company is not None:
            clash = clash.exclude(pk=self.company.pk)
        if clash.exists():
            raise forms.ValidationError(f"There is already a company with the symbol {symbol}.")
        return symbol

    def clean_aliases(self):
        from finance.services.companies import CompanyError, aliases_clean

        try:
            return aliases_clean(self.cleaned_data["aliases"])
        except CompanyError as error:
            raise forms.ValidationError(str(error)) from None


class RedetectForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=366, initial=30, label="Articles of the last (days)")


class MentionAddForm(forms.Form):
    symbol = forms.CharField(max_length=20, label="Ticker",
                             widget=forms.TextInput(attrs={"list": "finance-symbols", "autocomplete": "off",
                                                           "placeholder": "Symbol"}))
    relevance = forms.FloatField(initial=1.0, widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01",
                                                                               "max": "1"}),
                                 help_text="Above 0, at most 1: how much the article is about it.")


class MentionRelevanceForm(forms.Form):
    relevance = forms.FloatField(widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "max": "1"}))


class PriceUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from finance.services import prices

        self.fields["file"].help_text = (f"Columns symbol, date (YYYY-MM-DD) and close; up to "
                                         f"{filesizeformat(prices.PRICES_MAX_BYTES)}.")

    def clean_file(self):
        from finance.services import prices

        upload = self.cleaned_data["file"]
        if upload.size > prices.PRICES_MAX_BYTES:
            raise forms.ValidationError(
                f"{upload.name} is {filesizeformat(upload.size)}; the limit is "
                f"{filesizeformat(prices.PRICES_MAX_BYTES)}. Split it into smaller files.")
        return upload
