from django import template

register = template.Library()

BUCKET_CLASS = {"bearish": "badge-bad", "somewhat bearish": "badge-bad", "neutral": "",
                "somewhat bullish": "badge-ok", "bullish": "badge-ok"}


@register.inclusion_tag("finance/_score.html")
def score_badge(score, bucket=""):
    """A signed score with its bucket, coloured by direction."""
    return {"score": score, "bucket": bucket, "css": BUCKET_CLASS.get(bucket, "")}


@register.filter
def signed(value, digits=2):
    """+0.47 / −0.35: a change reads with its sign."""
    if value is None or value == "":
        return "–"
    return f"{float(value):+.{int(digits)}f}"
