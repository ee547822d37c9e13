"""Forms of the operator pages: dataset upload and fine-tune start."""

from pathlib import Path

from django import forms
from django.template.defaultfilters import filesizeformat

from mlcore import selectors
from mlcore.models import Dataset

# Uploads are read into memory to be cleaned; larger files are refused before they are read.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

FORMAT_CHOICES = [
    ("", "Automatic (from the file name)"),
    ("csv", "CSV"),
    ("jsonl", "JSON Lines"),
    ("text", "Plain text, documents separated by blank lines"),
    ("phrasebank", "Financial PhraseBank (sentence@label)"),
]

# The hyper-parameters the form passes to the training job, by field name.
FINETUNE_PARAMS = ("epochs", "batch_size", "learning_rate", "max_length", "patience", "seed")


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Leave empty to use the file's name.")
    kind = forms.ChoiceField(choices=Dataset.Kind.choices, initial=Dataset.Kind.CLASSIFICATION)
    file = forms.FileField(help_text="CSV, JSON Lines or plain text.")
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False)
    text_column = forms.CharField(max_length=100, initial="text", required=False,
                                  help_text='The column (or JSON field) holding the text; "text" when empty.')
    label_column = forms.CharField(max_length=100, required=False,
                                   help_text='For text with a label; "label" when empty.')
    target_column = forms.CharField(max_length=100, required=False,
                                    help_text='For text with a number; "target" when empty.')

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = f"CSV, JSON Lines or plain text, up to {filesizeformat(MAX_UPLOAD_BYTES)}."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"{upload.name} is {filesizeformat(upload.size)}; the limit is {filesizeformat(MAX_UPLOAD_BYTES)}. "
                "Upload a smaller file or split it."
            )
        return upload

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if not cleaned.get("name") and upload is not None:
            cleaned["name"] = Path(upload.name).stem[:200] or "upload"
        cleaned["text_column"] = cleaned.get("text_column") or "text"
        cleaned["label_column"] = cleaned.get("label_column") or None
        cleaned["target_column"] = cleaned.get("target_column") or None
        cleaned["format"] = cleaned.get("format") or None
        return cleaned


class DatasetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} · {obj.get_kind_display().lower()} · {obj.rows_kept} rows"


class FinetuneForm(forms.Form):
    task = forms.ChoiceField(choices=())
    scope = forms.CharField(
        max_length=100, required=False,
        help_text='Leave empty for the whole task, or train one model per scope, e.g. "assignment:12".',
    )
    dataset = DatasetChoiceField(queryset=Dataset.objects.none(), empty_label="Choose a dataset")
    epochs = forms.IntegerField(min_value=1, max_value=50, initial=3)
    batch_size = forms.IntegerField(min_value=1, max_value=256, initial=16)
    learning_rate = forms.FloatField(initial=5e-5, widget=forms.NumberInput(attrs={"step": "any"}),
                                     help_text="Above 0 and at most 0.01.")
    max_length = forms.IntegerField(min_value=16, max_value=512, initial=128, help_text="Tokens per text.")
    patience = forms.IntegerField(min_value=1, max_value=20, initial=2,
                                  help_text="Stop after this many epochs without a better validation score.")
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=13)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task"].choices = [(task.value, task.label) for task in selectors.trainable_tasks()]
        self.fields["dataset"].queryset = selectors.datasets_overview()

    def clean_learning_rate(self):
        rate = self.cleaned_data["learning_rate"]
        if not 0 < rate <= 1e-2:
            raise forms.ValidationError("The learning rate must be above 0 and at most 0.01.")
        return rate

    @property
    def params(self) -> dict:
        return {name: self.cleaned_data[name] for name in FINETUNE_PARAMS}
