"""Forms of the grading pages: they parse and validate input; the services do the writes."""

from django import forms

from education.services.courses import RubricError, rubric_parse, traits_parse
from education.services.grading import GradingError, essay_text_clean, upload_decode

MAX_UPLOAD_BYTES = 1_000_000

RUBRIC_HELP = (
    'One criterion per line as "Name: what it looks for", with its score lines indented under it as '
    '"score: description". Comments on essays cite these criteria (spelling and grammar cite a criterion named '
    'like "Conventions", transitions one like "Organization").'
)


class AssignmentForm(forms.Form):
    title = forms.CharField(max_length=200)
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000)
    score_min = forms.IntegerField(label="Lowest score", min_value=0, max_value=99, initial=1)
    score_max = forms.IntegerField(label="Highest score", min_value=1, max_value=100, initial=6)
    traits = forms.CharField(
        required=False, max_length=500,
        help_text="Comma-separated trait names scored on each essay; empty: one per rubric criterion.",
    )
    rubric = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "class": "code-area"}), help_text=RUBRIC_HELP,
                             max_length=20_000)

    def clean(self):
        data = super().clean()
        lo, hi = data.get("score_min"), data.get("score_max")
        if lo is not None and hi is not None and lo >= hi:
            self.add_error("score_max", "The highest score must be above the lowest.")
            return data
        if "rubric" in data and lo is not None and hi is not None:
            try:
                data["rubric"] = rubric_parse(data["rubric"], score_min=lo, score_max=hi)
            except RubricError as exc:
                for error in exc.errors:
                    self.add_error("rubric", error)
        data["traits"] = traits_parse(data.get("traits", ""))
        return data


class EssayForm(forms.Form):
    text = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 16}),
                           label="Your essay", help_text="Paste or write your essay here, or upload a .txt file.")
    upload = forms.FileField(required=False, label="…or upload a .txt file",
                             help_text=f"Plain text, UTF-8, up to {MAX_UPLOAD_BYTES // 1_000_000} MB.")

    def clean(self):
        data = super().clean()
        text, upload = data.get("text") or "", data.get("upload")
        if upload is not None:
            if text.strip():
                raise forms.ValidationError("Paste the essay or upload a file, not both.")
            if not upload.name.lower().endswith(".txt"):
                raise forms.ValidationError("Upload a plain-text .txt file.")
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError(f"The file is over {MAX_UPLOAD_BYTES // 1_000_000} MB; "
                                            "an essay is a text file far smaller than that.")
            try:
                text = upload_decode(upload.read())
            except GradingError as exc:
                raise forms.ValidationError(str(exc)) from exc
        try:
            data["essay_text"] = essay_text_clean(text)
        except GradingError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


class OverrideForm(forms.Form):
    score = forms.IntegerField(label="Teacher grade")
    reason = forms.CharField(max_length=1000, help_text="Kept with the grade and in its history.")


class CalibrateForm(forms.Form):
    finetune = forms.BooleanField(
        required=False, initial=True, label="Also fine-tune the encoder (when at least 10 essays are graded)",
    )
