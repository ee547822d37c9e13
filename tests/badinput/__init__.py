"""The bad-input corpus: small committed files (see README.md) and the big ones, built at test time."""

from pathlib import Path

CORPUS = Path(__file__).parent
ONE_MB = 1024 * 1024


def read(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def one_mb_line(*, header: str = "") -> bytes:
    """`header` then a single 1 MB line with no line break (never committed: built when a test needs it)."""
    return header.encode() + b"Norvale " * (ONE_MB // 8)


def one_mb_field_csv() -> bytes:
    """A valid header, then one row whose body is a 1 MB single line."""
    return b"title,body,url,published_at\nNorvale Bank profit rose," + b"x" * ONE_MB + b",https://n.example/1,2026-03-02\n"


HTML_PAYLOADS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
HTML_ESCAPED = ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;")
