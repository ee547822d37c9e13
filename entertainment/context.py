"""The context builder: what a small model is shown before it writes (pure; no database, no model).

One builder for stories and NPC replies, after KoboldCpp (memory, author's note a few lines from the
end), NovelAI (lorebook keys, insertion order) and SillyTavern (cascading world info with a recursion
limit and a token budget). Nothing is dropped silently: every triggered entry is in the report,
included or excluded with the reason.

Token counting is injected: `count_tokens(texts) -> [n, ...]` (the app passes the model's tokenizer,
tests pass a word count), so the budget arithmetic is exact under test.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

CountTokens = Callable[[list[str]], list[int]]

OVER_BUDGET = "over budget"
DISABLED = "disabled"
RECURSION_LIMIT = "recursion limit"
SEPARATOR = "\n\n"


class ContextError(ValueError):
    """The fixed parts alone do not fit in the model's window."""


@dataclass(frozen=True)
class Lore:
    """A lore entry as the builder sees it; `enabled` already accounts for disabled parent entries."""

    id: int
    title: str
    keys: Sequence[str]
    text: str
    priority: int = 0
    insertion_order: int = 0
    enabled: bool = True
    can_trigger_others: bool = False


@dataclass
class Part:
    name: str
    kind: str  # persona | memory | lore | authors_note | recent_text
    tokens: int
    included: bool
    reason: str = ""
    trigger: str = ""  # for lore: the key that matched and where ("recent text" or "cascade from <title>")
    depth: int | None = None  # for lore: 0 = the recent text triggered it, n = n steps of cascade


@dataclass
class BuiltContext:
    prompt: str
    parts: list[Part] = field(default_factory=list)
    prompt_tokens: int = 0
    available_tokens: int = 0

    def report(self) -> list[dict]:
        return [asdict(part) for part in self.parts]


def key_pattern(key: str) -> re.Pattern | None:
    """Case-insensitive whole-word match of a key (a word or a phrase); None for a blank key."""
    words = key.split()
    if not words:
        return None
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def _first_match(entry: Lore, text: str) -> str | None:
    for key in entry.keys:
        pattern = key_pattern(str(key))
        if pattern and pattern.search(text):
            return str(key).strip()
    return None


@dataclass
class _Activation:
    entry: Lore
    depth: int
    trigger: str


def activate_lore(entries: Sequence[Lore], scan_text: str, *, recursion_limit: int) -> list[_Activation]:
    """Entries whose keys appear in `scan_text`, then (cascading) in the text of triggered entries that may
    trigger others, breadth first. Depth 0 is the scan text; entries first reached at a depth beyond
    `recursion_limit` are returned with that depth so the caller can report them."""
    found: dict[int, _Activation] = {}
    frontier: list[tuple[str, str]] = [(scan_text, "recent text")]
    depth = 0
    while frontier:
        next_frontier = []
        for text, source in frontier:
            for entry in entries:
                if entry.id in found:
                    continue
                key = _first_match(entry, text)
                if key is None:
                    continue
                found[entry.id] = _Activation(entry, depth, f"“{key}” in {source}")
                if entry.enabled and entry.can_trigger_others and depth < recursion_limit + 1:
                    next_frontier.append((entry.text, f"cascade from {entry.title}"))
        frontier = next_frontier if depth <= recursion_limit else []
        depth += 1
    return list(found.values())


def insert_authors_note(text: str, note_line: str, depth: int) -> str:
    """The note as its own line `depth` lines before the end of `text` (at the top when text is shorter)."""
    lines = text.split("\n") if text else []
    at = max(len(lines) - depth, 0)
    return "\n".join(lines[:at] + [note_line] + lines[at:])


def build_context(
    *,
    count_tokens: CountTokens,
    context_window: int,
    max_new_tokens: int,
    recent_text: str,
    memory: str = "",
    lore: Sequence[Lore] = (),
    persona: str = "",
    persona_name: str = "Character",
    authors_note: str = "",
    tail: str = "",
    lore_budget: int = 512,
    recursion_limit: int = 2,
    scan_chars: int = 2000,
    note_depth: int = 3,
    reserve_tokens: int = 0,
) -> BuiltContext:
    """The prompt and a report of its parts.

    Order in the prompt: persona, memory, lore (priority high→low, then insertion order), then the recent
    text with the author's note `note_depth` lines before its end, then `tail` (e.g. "Maren:"), which is
    never trimmed. The whole fits in `context_window - max_new_tokens - reserve_tokens`; the recent text is
    trimmed from the front (whole words) to make it fit. Lore is scanned for on the last `scan_chars`
    characters of the recent text plus the tail.
    """
    available = context_window - max_new_tokens - reserve_tokens
    parts: list[Part] = []
    fixed: list[str] = []

    def count(text: str) -> int:
        return count_tokens([text])[0] if text else 0

    if persona.strip():
        parts.append(Part(persona_name, "persona", count(persona.strip()), True))
        fixed.append(persona.strip())
    if memory.strip():
        parts.append(Part("Memory", "memory", count(memory.strip()), True))
        fixed.append(memory.strip())
    note_line = f"[Author's note: {authors_note.strip()}]" if authors_note.strip() else ""
    fixed_tokens = sum(p.tokens for p in parts) + count(note_line) + count(tail)
    if fixed_tokens > available:
        raise ContextError(
            f"The persona, memory, author's note and prompt ending take {fixed_tokens} tokens, but the model's "
            f"window leaves {available} ({context_window} minus {max_new_tokens} to write). Shorten them."
        )

    scan_text = recent_text[-scan_chars:] + ("\n" + tail if tail else "")
    activations = activate_lore(lore, scan_text, recursion_limit=recursion_limit)
    activations.sort(key=lambda a: (-a.entry.priority, a.entry.insertion_order, a.entry.id))
    budget = min(lore_budget, available - fixed_tokens)
    lore_counts = count_tokens([a.entry.text for a in activations]) if activations else []
    lore_texts, spent = [], 0
    for activation, tokens in zip(activations, lore_counts, strict=True):
        entry = activation.entry
        part = Part(entry.title, "lore", tokens, False, trigger=activation.trigger, depth=activation.depth)
        if not entry.enabled:
            part.reason = DISABLED
        elif activation.depth > recursion_limit:
            part.reason = RECURSION_LIMIT
        elif spent + tokens > budget:
            part.reason = f"{OVER_BUDGET} ({tokens} tokens; {budget - spent} of {budget} left)"
        else:
            part.included = True
            spent += tokens
            lore_texts.append(entry.text.strip())
        parts.append(part)

    head = SEPARATOR.join(fixed + lore_texts)
    room = available - count(head) - count(note_line) - count(tail)
    starts = [m.start() for m in re.finditer(r"\S+", recent_text)]  # where each word begins

    def last_words(n: int) -> str:
        return recent_text[starts[len(starts) - n]:].rstrip() if n else ""

    kept = _fit_words(len(starts), room, lambda n: count(last_words(n)))
    while True:
        recent = last_words(kept)
        body = insert_authors_note(recent, note_line, note_depth) if note_line else recent
        prompt = SEPARATOR.join([p for p in (head, body) if p])
        if tail:
            prompt = f"{prompt}\n{tail}" if prompt else tail
        total = count(prompt)
        if total <= available or kept == 0:
            break
        kept -= max(1, (kept // 20))  # joins can count more than the parts: trim a little more
    dropped = len(starts) - kept
    recent_tokens = count(recent)
    if note_line:
        parts.append(Part("Author's note", "authors_note", count(note_line), True))
    reason = f"trimmed: {dropped} word{'s' if dropped != 1 else ''} dropped from the front" if dropped else ""
    parts.append(Part("Recent text", "recent_text", recent_tokens, bool(recent), reason))
    if total > available:
        raise ContextError(f"The context needs {total} tokens but the model's window leaves {available}.")
    return BuiltContext(prompt=prompt, parts=parts, prompt_tokens=total, available_tokens=available)


def _fit_words(total: int, room: int, count_last) -> int:
    """The largest n <= total such that the last n words count at most `room` tokens (binary search)."""
    if room <= 0 or total == 0:
        return 0
    if count_last(total) <= room:
        return total
    lo, hi = 0, total
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_last(mid) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo
