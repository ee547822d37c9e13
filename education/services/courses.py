"""Courses and assignments: the teacher's writes, and the rubric's plain-text format.

Rubric text format (what the assignment form's textarea holds), one criterion per unindented line and its
score lines indented under it:

    Conventions: Spelling, grammar, punctuation and capitals are correct.
      6: Almost no errors; the writing reads cleanly.
      3: Errors are frequent but the meaning is clear.
      1: Errors make the essay hard to follow.
    Organization: Paragraphs follow a plan and are linked by transitions.
      ...
"""

import re

from django.db import IntegrityError, transaction

from education.models import Assignment, Course

CRITERION = re.compile(r"^(?P<name>[^\s:][^:]{0,79}):\s*(?P<description>.*)$")
SCORE_LINE = re.compile(r"^\s+-?\s*(?P<score>-?\d+)\s*[:.)-]\s*(?P<text>.+)$")


class RubricError(ValueError):
    """The rubric text cannot be read; `errors` lists what is wrong, line by line."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def rubric_parse(text: str, *, score_min: int, score_max: int) -> list[dict]:
    """Read the rubric text format into `[{"name", "description", "lines": [{"score", "text"}]}]`."""
    criteria, errors = [], []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        if not raw.strip():
            continue
        line = raw.replace("\t", "  ").rstrip()
        score = SCORE_LINE.match(line)
        if score:
            if not criteria:
                errors.append(f"Line {number}: a score line comes before any criterion.")
                continue
            value = int(score.group("score"))
            if not score_min <= value <= score_max:
                errors.append(f"Line {number}: score {value} is outside the range {score_min}–{score_max}.")
                continue
            if any(existing["score"] == value for existing in criteria[-1]["lines"]):
                errors.append(f"Line {number}: {criteria[-1]['name']} already has a line for score {value}.")
                continue
            criteria[-1]["lines"].append({"score": value, "text": score.group("text").strip()})
            continue
        criterion = CRITERION.match(line)
        if criterion and not line[0].isspace():
            name = criterion.group("name").strip()
            if any(c["name"].lower() == name.lower() for c in criteria):
                errors.append(f"Line {number}: the criterion {name!r} appears twice.")
                continue
            criteria.append({"name": name, "description": criterion.group("description").strip(), "lines": []})
            continue
        errors.append(f'Line {number}: expected "Criterion: description" or an indented "score: text" line.')
    if not criteria and not errors:
        errors.append("Add at least one criterion.")
    for criterion in criteria:
        criterion["lines"].sort(key=lambda item: -item["score"])
    if errors:
        raise RubricError(errors)
    return criteria


def rubric_format(rubric: list[dict]) -> str:
    """The rubric in the text format rubric_parse reads (for the edit form)."""
    out = []
    for criterion in rubric or []:
        out.append(f"{criterion['name']}: {criterion.get('description', '')}".rstrip())
        out.extend(f"  {line['score']}: {line['text']}" for line in criterion.get("lines", []))
    return "\n".join(out)


def traits_parse(text: str) -> list[str]:
    seen, out = set(), []
    for name in (part.strip() for part in (text or "").split(",")):
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name[:60])
    return out


def assignment_save(
    *, course: Course, title: str, prompt: str, rubric: list[dict], score_min: int, score_max: int,
    traits: list[str], assignment: Assignment | None = None,
) -> Assignment:
    """Create or update an assignment; traits default to the rubric's criterion names."""
    if not score_min < score_max:
        raise ValueError("The highest score must be above the lowest.")
    if assignment is not None and (assignment.score_min, assignment.score_max) != (score_min, score_max) \
            and assignment.essays.exists():
        raise ValueError("Essays have been submitted and scored on this range; the score range cannot change now.")
    traits = traits or [c["name"] for c in rubric]
    fields = {"title": title.strip(), "prompt": prompt.strip(), "rubric": rubric, "score_min": score_min,
              "score_max": score_max, "traits": traits}
    try:
        with transaction.atomic():
            if assignment is None:
                return Assignment.objects.create(course=course, **fields)
            for name, value in fields.items():
                setattr(assignment, name, value)
            assignment.save()
            return assignment
    except IntegrityError as exc:
        raise ValueError(f"This course already has an assignment called {title.strip()!r}.") from exc
