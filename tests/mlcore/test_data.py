import hashlib
import json
import os
import subprocess
import sys

import pytest

from mlcore.data import (
    SPLITS,
    DataError,
    RawRow,
    Rejected,
    assign_splits,
    clean_and_dedup,
    near_duplicate_clusters,
    normalize_text,
    read_csv,
    read_jsonl,
    read_path,
    read_phrasebank,
    read_text,
    split_for,
)

# 15 words; the variant adds one word at the end (Jaccard 11/12 on word 5-grams).
HEADLINE = "Apple shares rise three percent after strong iPhone sales in China beat analyst expectations again"
HEADLINE_VARIANT = HEADLINE + " today"
UNRELATED = "Oil prices slip as OPEC signals an output increase while the demand outlook for Europe weakens"


def sha1_of(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# read_csv


def test_read_csv_reads_text_and_label_with_line_numbers():
    data = b"text,label\nProfit rose sharply,positive\nSales fell,negative\n"

    result = read_csv(data, label_column="label")

    assert result.rows == [
        RawRow(line=2, text="Profit rose sharply", label="positive", target=None),
        RawRow(line=3, text="Sales fell", label="negative", target=None),
    ]
    assert result.rejected == []


def test_read_csv_strips_a_utf8_byte_order_mark_from_the_header():
    data = "text,label\nÜber-profit grew,positive\n".encode("utf-8-sig")

    result = read_csv(data, label_column="label")

    assert [(row.text, row.label) for row in result.rows] == [("Über-profit grew", "positive")]


def test_read_csv_decodes_cp1252():
    data = "text,label\nThe café costs 3 € more,neutral\n".encode("cp1252")

    result = read_csv(data, label_column="label")

    assert result.rows[0].text == "The café costs 3 € more"


def test_read_csv_decodes_utf16_with_a_byte_order_mark():
    data = "text\tlabel\nZürich bank gains\tpositive\n".encode("utf-16")

    result = read_csv(data, label_column="label")

    assert [(row.text, row.label) for row in result.rows] == [("Zürich bank gains", "positive")]


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64 + bytes(range(256)),
        b"text\n" + bytes(range(1, 32)) * 40,
    ],
    ids=["png-with-nul-bytes", "control-characters"],
)
def test_read_csv_refuses_a_binary_file_with_a_clear_message(data):
    with pytest.raises(DataError, match=r"chart\.png does not look like a text file"):
        read_csv(data, filename="chart.png")


@pytest.mark.parametrize("data", [b"", b"  \n\n", b"\xef\xbb\xbf"])
def test_read_csv_refuses_an_empty_file(data):
    with pytest.raises(DataError, match=r"^scores\.csv is empty\.$"):
        read_csv(data, filename="scores.csv")


def test_read_csv_missing_column_lists_the_columns_found():
    data = b"headline,sentiment\nProfit rose,positive\n"

    with pytest.raises(DataError) as caught:
        read_csv(data, text_column="text", filename="news.csv")

    assert str(caught.value) == 'news.csv has no column "text". The columns in its header are: "headline", "sentiment".'


def test_read_csv_rejects_a_short_row_with_its_line_and_reason():
    data = b"text,label\nProfit rose,positive\nno label here\nSales fell,negative\n"

    result = read_csv(data, label_column="label")

    assert [row.line for row in result.rows] == [2, 4]
    assert result.rejected == [Rejected(line=3, reason="has 1 fields, the header has 2", text="no label here")]


def test_read_csv_finds_columns_in_any_case_preferring_an_exact_match():
    data = b"Text,text,Label\nignored,Profit rose,positive\n"

    result = read_csv(data, label_column="label")

    assert [(row.text, row.label) for row in result.rows] == [("Profit rose", "positive")]


def test_read_csv_detects_a_semicolon_delimiter():
    data = b"text;score\nA clear essay, with commas;4,5\nA weaker one;2\n"

    result = read_csv(data, target_column="score")

    assert [(row.text, row.target) for row in result.rows] == [
        ("A clear essay, with commas", 4.5),
        ("A weaker one", 2.0),
    ]


def test_read_csv_rejects_rows_with_blank_label_or_bad_target_and_keeps_the_rest():
    data = b"text,label,score\nGood,positive,1.5\nNo label, ,2\nNot a number,neutral,abc\nInfinite,neutral,inf\n"

    result = read_csv(data, label_column="label", target_column="score")

    assert [(row.line, row.text, row.label, row.target) for row in result.rows] == [(2, "Good", "positive", 1.5)]
    assert [(item.line, item.reason) for item in result.rejected] == [
        (3, 'has no "label"'),
        (4, 'has a "score" that is not a number ("abc")'),
        (5, 'has a "score" that is not a finite number (inf)'),
    ]


def test_read_csv_rejects_a_line_with_broken_quotes_and_reads_on():
    data = b'text,label\n"Quoted" then more,positive\nFine,neutral\n'

    result = read_csv(data, label_column="label")

    assert [row.text for row in result.rows] == ["Fine"]
    assert result.rejected[0].line == 2
    assert result.rejected[0].text == '"Quoted" then more,positive'


def test_read_csv_refuses_a_quote_that_swallows_the_rest_of_the_file():
    data = b'text,label\nFine,neutral\n"Never closed,positive\nThis line is inside the quote,neutral\n'

    with pytest.raises(DataError, match=r"news\.csv, line 3: a quoted value that starts here is not closed"):
        read_csv(data, label_column="label", filename="news.csv")


def test_read_csv_keeps_multiline_quoted_text_with_its_first_line():
    data = b'text,score\n"First paragraph.\n\nSecond paragraph.",3\nShort,2\n'

    result = read_csv(data, target_column="score")

    assert [(row.line, row.text) for row in result.rows] == [(2, "First paragraph.\n\nSecond paragraph."), (5, "Short")]


# Other readers


def test_read_jsonl_rejects_one_broken_line_and_skips_blank_ones():
    lines = [
        json.dumps({"text": "Profit rose", "label": "positive"}),
        "",
        '{"text": "Broken", "label": ',
        json.dumps({"text": "Sales fell", "label": 2}),
    ]

    result = read_jsonl("\n".join(lines).encode(), label_field="label")

    assert [(row.line, row.text, row.label) for row in result.rows] == [
        (1, "Profit rose", "positive"),
        (4, "Sales fell", "2"),
    ]
    assert len(result.rejected) == 1
    assert result.rejected[0].line == 3
    assert result.rejected[0].reason.startswith("is not valid JSON (Expecting value at column")


def test_read_jsonl_names_a_field_that_no_line_has():
    data = b'{"body": "Profit rose"}\n{"body": "Sales fell"}\n'

    with pytest.raises(
        DataError, match=r'^essays\.jsonl has no "text" field on any line\. The fields found are: "body"\.$'
    ):
        read_jsonl(data, filename="essays.jsonl")


def test_read_text_splits_documents_on_blank_lines():
    data = b"First story, line one.\nLine two.\n\n\n   \nSecond story.\n\nThird.\n"

    result = read_text(data)

    assert [(row.line, row.text) for row in result.rows] == [
        (1, "First story, line one.\nLine two."),
        (6, "Second story."),
        (8, "Third."),
    ]


def test_read_phrasebank_splits_on_the_last_at_and_decodes_latin1():
    data = (
        b"Caf\xe9 sales rose@positive\n"
        b"Contact ir@example.com for the report@neutral\n"
        b"Profits were flat@mixed\n"
        b"No label on this line\n"
    )

    result = read_phrasebank(data)

    assert [(row.line, row.text, row.label) for row in result.rows] == [
        (1, "Café sales rose", "positive"),
        (2, "Contact ir@example.com for the report", "neutral"),
    ]
    assert [(item.line, item.reason) for item in result.rejected] == [
        (3, 'has the unknown label "mixed" (expected one of positive, neutral, negative)'),
        (4, 'has no "@" before its label'),
    ]


def test_read_path_picks_the_reader_by_extension_or_format(tmp_path):
    (tmp_path / "news.ndjson").write_bytes(b'{"text": "Profit rose"}\n')
    (tmp_path / "bank.txt").write_bytes(b"Sales fell@negative\n")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")

    assert read_path(tmp_path / "news.ndjson").rows == [RawRow(line=1, text="Profit rose")]
    assert read_path(tmp_path / "bank.txt").rows == [RawRow(line=1, text="Sales fell@negative")]
    assert read_path(tmp_path / "bank.txt", fmt="phrasebank").rows == [
        RawRow(line=1, text="Sales fell", label="negative")
    ]
    with pytest.raises(DataError, match=r'sheet\.xlsx: cannot tell how to read a "\.xlsx" file'):
        read_path(tmp_path / "sheet.xlsx")


# Normalisation


def test_normalize_text_removes_controls_folds_width_and_collapses_whitespace():
    raw = "  Revenue\x00 rose\x07 to \uff11\uff12\uff13\u00a0million\t\t(\ufb01nal)\r\n\r\n\r\n\r\nNext\u200b line  "

    assert normalize_text(raw) == "Revenue rose to 123 million (final)\n\nNext line"


def test_normalize_text_keeps_case_punctuation_and_single_blank_lines():
    assert normalize_text("Q3: Sales UP 5%!\n\nWhy?") == "Q3: Sales UP 5%!\n\nWhy?"


# Cleaning and deduplication


def test_clean_and_dedup_drops_exact_duplicates_after_normalisation_and_keeps_the_first():
    rows = [
        RawRow(line=2, text="Profit rose sharply", label="positive"),
        RawRow(line=3, text="  PROFIT   rose sharply ", label="neutral"),
        RawRow(line=4, text="Sales fell", label="negative"),
        RawRow(line=5, text="profit rose\tsharply", label="positive"),
        RawRow(line=6, text=" \x00 ", label="neutral"),
        RawRow(line=7, text="ok", label="neutral"),
    ]

    result = clean_and_dedup(rows)

    assert [(row.line, row.text, row.label) for row in result.rows] == [
        (2, "Profit rose sharply", "positive"),
        (4, "Sales fell", "negative"),
    ]
    assert result.rows[0].hash == sha1_of("profit rose sharply")
    assert result.exact_duplicates == 2
    assert result.near_duplicates == 0
    assert [(item.line, item.reason) for item in result.rejected] == [
        (6, "is empty after cleaning"),
        (7, "is too short after cleaning (2 characters; at least 3 are needed)"),
    ]


def test_clean_and_dedup_drops_a_headline_differing_by_one_word_but_not_an_unrelated_one():
    rows = [
        RawRow(line=1, text=HEADLINE, label="positive"),
        RawRow(line=2, text=UNRELATED, label="negative"),
        RawRow(line=3, text=HEADLINE_VARIANT, label="positive"),
    ]

    result = clean_and_dedup(rows)

    assert [row.line for row in result.rows] == [1, 2]
    assert [row.cluster for row in result.rows] == [0, 1]
    assert result.near_duplicates == 1
    assert result.exact_duplicates == 0
    assert result.clusters == {0: 2, 1: 1}


def test_clean_and_dedup_is_the_same_in_another_process():
    # Another process gets another str hash seed, so anything resting on hash() or set order would differ.
    script = (
        "import json, sys\n"
        "from mlcore.data import RawRow, assign_splits, clean_and_dedup\n"
        "texts = json.load(sys.stdin)\n"
        "result = clean_and_dedup([RawRow(line=i, text=t) for i, t in enumerate(texts)])\n"
        "splits = assign_splits(result.rows)\n"
        "print(json.dumps([[r.line, r.cluster, r.hash] for r in result.rows]"
        " + [result.clusters] + [{k: [r.line for r in v] for k, v in splits.items()}]))\n"
    )
    texts = [f"Headline number {i} about markets, banks and the quarterly results of firm {i % 7}" for i in range(60)]
    texts += [text + " today" for text in texts[:20]]
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        completed = subprocess.run(
            [sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True, env=env, check=True
        )
        outputs.append(completed.stdout)

    assert outputs[0] == outputs[1]
    *rows, clusters, splits = json.loads(outputs[0])
    assert len(rows) == 60
    assert sum(clusters.values()) == 80
    assert sum(len(lines) for lines in splits.values()) == 60


def test_near_duplicate_clusters_gives_each_text_the_index_of_its_first_member():
    texts = [HEADLINE, UNRELATED, HEADLINE_VARIANT, "Completely different words here", UNRELATED + " again", HEADLINE]

    assert near_duplicate_clusters(texts) == [0, 1, 0, 3, 1, 0]


# Splits


def test_split_for_is_fixed_by_the_first_eight_hex_digits():
    assert split_for("0f000000" + "0" * 32) == "test"
    assert split_for("1f000000" + "0" * 32) == "validation"
    assert split_for("ff000000" + "0" * 32) == "train"
    assert split_for("ff000000" + "0" * 32, validation=0.0, test=0.99) == "train"
    assert split_for("f0000000" + "0" * 32, validation=0.0, test=0.99) == "test"


def test_split_for_refuses_shares_that_leave_nothing_to_train_on():
    with pytest.raises(ValueError, match="leave room for training"):
        split_for("0" * 40, validation=0.5, test=0.5)


def distinct_text(number: int) -> str:
    digest = sha1_of(str(number))
    return " ".join(digest[start : start + 8] for start in range(0, 40, 8))


def test_assign_splits_proportions_are_close_to_the_targets():
    rows = clean_and_dedup([RawRow(line=i, text=distinct_text(i)) for i in range(5000)]).rows
    assert len(rows) == 5000

    splits = assign_splits(rows, validation=0.1, test=0.2)

    assert list(splits) == list(SPLITS)
    assert sum(len(part) for part in splits.values()) == 5000
    for name, target in (("train", 0.7), ("validation", 0.1), ("test", 0.2)):
        assert abs(len(splits[name]) / 5000 - target) <= 0.03, name


def test_the_same_text_lands_in_the_same_split_in_two_datasets():
    shared = [f"shared sentence {i} about the economy" for i in range(200)]
    first = clean_and_dedup([RawRow(line=i, text=t) for i, t in enumerate(shared + ["only in the first"])])
    second = clean_and_dedup(
        [RawRow(line=i, text=t) for i, t in enumerate([distinct_text(i) for i in range(300)] + shared[::-1])]
    )

    def split_of(result):
        return {row.text: name for name, part in assign_splits(result.rows).items() for row in part}

    first_splits, second_splits = split_of(first), split_of(second)
    assert {text: first_splits[text] for text in shared} == {text: second_splits[text] for text in shared}
    assert set(first_splits[text] for text in shared) == set(SPLITS)
