from django import template

register = template.Library()

BUCKET_CLASS = {"bearish": "badge-bad", "somewhat bearish": "badge-bad", "neutral": "",
                "somewhat bullish": "badge-ok", "bullish": "badge-ok"}


@register.inclusion_tag("finance/_score.html")
def score_badge(score, bucket=""):
    """A signed score with its bucket, coloured by direction."""
    return {"score": score, "bucket": bucket, "css": BUCKET_CLASS.get(bucket, "")}
