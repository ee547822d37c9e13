"""State changes of finance. `ingest`: validating, storing, clustering and scoring articles.
`uploads`: CSV uploads, API pushes and the record of each load. `companies`: companies, analysts' edits of
mentions and re-detection. `prices`: daily prices from CSV."""

from finance.services.ingest import (
    BODY_MAX,
    CLUSTER_THRESHOLD,
    CLUSTER_WINDOW,
    MAX_SENTENCES,
    SCORE_BATCH,
    TITLE_MAX,
    IngestResult,
    RowError,
    TickerIndex,
    article_sentences,
    articles_ingest,
    articles_rescore_all,
    articles_score,
    articles_score_enqueue,
    content_hash,
    parse_published,
)
from finance.services.uploads import (
    CSV_EXAMPLE_HEADER,
    CSV_FIELDS,
    CSV_MAX_BYTES,
    PENDING_UPLOAD_MAX_AGE,
    CsvPreview,
    CsvRows,
    articles_push,
    articles_upload,
    csv_guess_columns,
    csv_preview,
    csv_rows,
    ingest_run_record,
    pending_upload_discard,
    pending_upload_read,
    pending_upload_save,
    source_for,
)

__all__ = [
    "BODY_MAX", "CLUSTER_THRESHOLD", "CLUSTER_WINDOW", "MAX_SENTENCES", "SCORE_BATCH", "TITLE_MAX", "IngestResult",
    "RowError", "TickerIndex", "article_sentences", "articles_ingest", "articles_rescore_all", "articles_score",
    "articles_score_enqueue", "content_hash", "parse_published", "CSV_EXAMPLE_HEADER", "CSV_FIELDS", "CSV_MAX_BYTES",
    "PENDING_UPLOAD_MAX_AGE", "CsvPreview", "CsvRows", "articles_push", "articles_upload", "csv_guess_columns",
    "csv_preview", "csv_rows", "ingest_run_record", "pending_upload_discard", "pending_upload_read",
    "pending_upload_save", "source_for",
]
