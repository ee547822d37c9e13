"""Forms of the tutor pages."""

from django import forms

from education.models import CourseMaterial
from education.services.material import MATERIAL_MAX_BYTES
from education.services.tutor import QUESTION_MAX_CHARS


class MaterialForm(forms.Form):
    title = forms.CharField(max_length=200, required=False,
                            help_text="Shown with every citation. Empty: the file's name.")
    file = forms.FileField(required=False, help_text=f"Plain text (.txt), Markdown (.md) or PDF (.pdf), at most "
                                                     f"{MATERIAL_MAX_BYTES // 1024 // 1024} MB.")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}),
                           label="…or paste the text", max_length=500_000)
    pasted_kind = forms.ChoiceField(label="Pasted text is", initial=CourseMaterial.Kind.MARKDOWN,
                                    choices=[(CourseMaterial.Kind.MARKDOWN, "Markdown (# headings)"),
                                             (CourseMaterial.Kind.TEXT, "Plain text")])

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload and upload.size > MATERIAL_MAX_BYTES:  # refused before it is read into memory
            raise forms.ValidationError(f"{upload.name} is {upload.size / 1024 / 1024:.1f} MB; course material can "
                                        f"be at most {MATERIAL_MAX_BYTES // 1024 // 1024} MB.")
        return upload

    def clean(self):
        data = super().clean()
        has_file, has_text = bool(data.get("file")), bool((data.get("text") or "").strip())
        if has_file == has_text:
            raise forms.ValidationError("Choose a file or paste the text (one of the two).")
        if has_text and not (data.get("title") or "").strip():
            self.add_error("title", "Give pasted text a title.")
        return data


class QuestionForm(forms.Form):
    question = forms.CharField(
        max_length=QUESTION_MAX_CHARS, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Ask about the course material…"}),
        error_messages={"required": "Type a question first.",
                        "max_length": f"Keep the question under {QUESTION_MAX_CHARS} characters; "
                                      "ask one thing at a time."},
    )


class FlagForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=True, label="What is wrong with this answer?",
                             widget=forms.TextInput(attrs={"placeholder": "e.g. it cites the wrong passage"}))
