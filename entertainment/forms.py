from django import forms

from entertainment.generation import MAX_CANDIDATES, MAX_DIALOGUE_TOKENS, MAX_NEW_TOKENS, PRESETS
from entertainment.models import Character, LoreEntry

TEXTAREA = {"rows": 3}


class ProjectForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs=TEXTAREA))


class BlocklistForm(forms.Form):
    blocklist = forms.CharField(required=False, max_length=20000, widget=forms.Textarea(attrs={"rows": 4}),
                                help_text="One word or phrase a line; generated text shows them as asterisks.")


class LoreEntryForm(forms.Form):
    title = forms.CharField(max_length=200)
    keys = forms.CharField(required=False, max_length=2000, help_text="Comma-separated words or phrases")
    text = forms.CharField(required=False, max_length=10000, widget=forms.Textarea(attrs=TEXTAREA))
    priority = forms.IntegerField(initial=0, min_value=-1000, max_value=1000)
    enabled = forms.BooleanField(required=False, initial=True)
    can_trigger_others = forms.BooleanField(required=False, label="Its text can trigger other entries")
    parent = forms.ModelChoiceField(queryset=LoreEntry.objects.none(), required=False, label="Under")

    def __init__(self, *args, project, entry=None, **kwargs):
        super().__init__(*args, **kwargs)
        parents = project.lore_entries.order_by("title")
        if entry is not None:
            parents = parents.exclude(pk=entry.pk)
        self.fields["parent"].queryset = parents


class CharacterForm(forms.ModelForm):
    class Meta:
        model = Character
        fields = ["name", "persona", "speaking_style", "goals", "knowledge", "relationships"]
        widgets = {f: forms.Textarea(attrs=TEXTAREA) for f in fields[1:]}


class StoryForm(forms.Form):
    title = forms.CharField(max_length=200)
    genre = forms.CharField(max_length=100, required=False)
    premise = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs=TEXTAREA))
    memory = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs=TEXTAREA),
                             help_text="Always at the top of what the model reads")
    authors_note = forms.CharField(required=False, max_length=1000, label="Author's note",
                                   help_text="Inserted a few lines before the end: tone, pace, what happens next")


class SamplingForm(forms.Form):
    preset = forms.ChoiceField(choices=[(k, k.title()) for k in PRESETS], initial="balanced")
    max_new_tokens = forms.IntegerField(label="Length (tokens)", min_value=1, max_value=MAX_NEW_TOKENS, initial=120)
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(required=False, min_value=0.05, max_value=1, label="Top-p")
    top_k = forms.IntegerField(required=False, min_value=0, max_value=200, label="Top-k")
    repetition_penalty = forms.FloatField(required=False, min_value=1, max_value=2)
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1, help_text="Empty: random")
    stop = forms.CharField(required=False, max_length=500, label="Stop strings",
                           help_text="One a line; \\n stands for a line break")

    def clean_stop(self):
        return [line for line in self.cleaned_data["stop"].splitlines() if line.strip()]


class StoryGenerateForm(SamplingForm):
    mode = forms.ChoiceField(choices=[("continue", "Continue"), ("regenerate", "Regenerate")])


class DialogueGenerateForm(SamplingForm):
    character = forms.ModelChoiceField(queryset=Character.objects.none())
    player_line = forms.CharField(max_length=1000, label="The player says")
    parent = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="After the line")
    count = forms.IntegerField(min_value=1, max_value=MAX_CANDIDATES, initial=3, label="Candidate replies")

    def __init__(self, *args, tree, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["character"].queryset = tree.characters.all() if tree.characters.exists() \
            else tree.project.characters.all()
        self.fields["parent"].choices = [("", "(start of the tree)")] + [
            (n.pk, f"#{n.pk} {n.speaker_name}: {n.text[:60]}") for n in tree.nodes.select_related("speaker")]
        self.fields["max_new_tokens"].initial = 60
        self.fields["max_new_tokens"].help_text = f"Per reply; replies are capped at {MAX_DIALOGUE_TOKENS} tokens"


class TreeForm(forms.Form):
    title = forms.CharField(max_length=200)
    scene = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs=TEXTAREA))
    characters = forms.ModelMultipleChoiceField(queryset=Character.objects.none(), required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["characters"].queryset = project.characters.all()


class NodeForm(forms.Form):
    speaker = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Who speaks")
    text = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    parent = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="After the line")
    choice_text = forms.CharField(required=False, max_length=500, label="Choice text",
                                  help_text="What the player picks to get here; empty: it follows on its own")
    condition = forms.CharField(required=False, max_length=100, help_text="A flag, e.g. has_key or not has_key")

    def __init__(self, *args, tree, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["speaker"].choices = [("", "Player")] + [(c.pk, c.name) for c in tree.project.characters.all()]
        self.fields["parent"].choices = [("", "(none: the first line)")] + [
            (n.pk, f"#{n.pk} {n.speaker_name}: {n.text[:60]}") for n in tree.nodes.select_related("speaker")]


class ChoiceForm(forms.Form):
    from_node = forms.IntegerField(widget=forms.HiddenInput)
    to_node = forms.IntegerField(label="Goes to line #")
    text = forms.CharField(required=False, max_length=500)
    condition = forms.CharField(required=False, max_length=100)


class TextForm(forms.Form):
    text = forms.CharField(max_length=20000, widget=forms.Textarea(attrs={"rows": 4}))


class StyleUploadForm(forms.Form):
    corpus = forms.FileField(help_text="Plain text (.txt) in the style you want, up to 5 MB; paragraphs become "
                                       "training passages")
    epochs = forms.IntegerField(min_value=1, max_value=5, initial=1)

    def clean_corpus(self):
        from entertainment.style import MAX_CORPUS_BYTES

        upload = self.cleaned_data["corpus"]
        if upload.size > MAX_CORPUS_BYTES:  # refused before the view reads it into memory
            raise forms.ValidationError(f"{upload.name} is {upload.size / 1024 / 1024:.1f} MB; the limit is "
                                        f"{MAX_CORPUS_BYTES // 1024 // 1024} MB.")
        return upload
