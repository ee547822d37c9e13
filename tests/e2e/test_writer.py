"""The writer: a world, a story generated while the page streams it, a dialogue tree with a branch, and exports."""

import json
import re
from pathlib import Path

import pytest

from core.roles import Role
from tests.entertainment.conftest import active_lm  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

# Records, across reloads of the tab, every text the job panel shows while studio.js streams a generation.
RECORD_JOB_TEXT = """
document.addEventListener("DOMContentLoaded", () => {
  const element = document.getElementById("job-text");
  if (!element) return;
  const record = () => {
    const seen = JSON.parse(sessionStorage.getItem("job-texts") || "[]");
    seen.push(element.textContent);
    sessionStorage.setItem("job-texts", JSON.stringify(seen));
  };
  record();
  new MutationObserver(record).observe(element, {childList: true, characterData: true, subtree: true});
});
"""
PLACEHOLDER = "(nothing written yet)"


def download(page, link_name: str) -> tuple[str, str]:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name, exact=True).click()
    return info.value.suggested_filename, Path(info.value.path()).read_text(encoding="utf-8")


def test_writer_journey(journey, ml_worker, make_user, active_lm):  # noqa: F811
    make_user(Role.WRITER, username="ink")
    with ml_worker():
        j = journey()
        page = j.page
        page.add_init_script(RECORD_JOB_TEXT)
        j.login("ink")
        j.goto("/stories/", snap="studio")
        page.get_by_label("Title", exact=True).fill("Gull Rock")
        page.get_by_label("Description").fill("A lighthouse island.")
        page.get_by_role("button", name="Create").click()
        j.see_heading("Gull Rock")
        j.snap("world")

        # A story, opened with a line of the writer's own, then continued by the model while the page streams it.
        page.get_by_text("New story").click()
        page.locator("#story_title").fill("The Dark Lamp")
        page.locator("#story_premise").fill("The lamp goes dark on the stormiest night.")
        page.get_by_role("button", name="Create story").click()
        j.see_heading("The Dark Lamp")
        page.get_by_text("Write the next lines yourself").click()
        page.get_by_label("Text", exact=True).fill("once upon a time the keeper lit the lamp .")
        page.get_by_role("button", name="Add", exact=True).click()
        j.snap("story")
        form = page.locator("form:has(button:text('Generate'))")
        form.get_by_label("Length (tokens)").fill("200")  # the tiny model reads 256 positions
        # Greedy: the random test model then writes all 200 tokens (sampling soon picks its end token).
        form.get_by_label("Temperature").fill("0")
        form.get_by_role("button", name="Generate").click()
        page.wait_for_url(re.compile(r"/stories/s/\d+/#job$"))
        j.snap("story-generating")
        # studio.js reloads the page when the job is done: the new segment is then part of the story.
        page.locator(".segment").nth(1).or_(page.locator("#job-error:not([hidden])")).wait_for(timeout=120_000)
        page.wait_for_load_state("load")
        assert page.locator("#job-error").is_hidden(), page.locator("#job-error").inner_text()
        assert page.locator("#job-state").inner_text() == "done"
        final = page.locator("#job-text").inner_text()
        assert final and final != PLACEHOLDER
        seen = [t for t in json.loads(page.evaluate("sessionStorage.getItem('job-texts')")) if t != PLACEHOLDER]
        partial = sorted({t for t in seen if t and t != final}, key=len)
        assert partial, f"the page never showed the text while it was being written: {seen}"
        print(f"the page showed {len(partial)} partial texts before the final one")
        assert all(final.startswith(t.strip()) for t in partial), seen
        assert page.locator(".segment").nth(1).inner_text().strip().startswith(final.strip()[:40])
        j.snap("story-generated")
        name, markdown = download(page, "Markdown")
        assert name.endswith(".md") and markdown.startswith("# The Dark Lamp\n")
        assert "once upon a time the keeper lit the lamp ." in markdown and final.strip()[:40] in markdown

        # A character, and a dialogue tree she speaks in.
        page.get_by_role("link", name="Gull Rock").click()
        j.see_heading("Gull Rock")
        assert "The Dark Lamp · no genre · 2 segments" in page.locator("#stories").inner_text()
        j.snap("world-with-story")
        page.get_by_role("link", name="New character").click()
        j.see_heading("New character")
        j.snap("character-new")
        page.get_by_label("Name", exact=True).fill("Maren")
        page.get_by_label("Persona").fill("The lighthouse keeper, sixty, wry.")
        page.get_by_role("button", name="Save").click()
        j.see_heading("Gull Rock")
        assert "Maren" in page.locator("#characters").inner_text()
        page.get_by_text("New dialogue tree").click()
        page.locator("#tree_title").fill("At the door")
        page.locator("#tree_scene").fill("Night; rain on the glass.")
        page.locator("#tree_characters").select_option(label="Maren")
        j.snap("world-with-character")
        page.get_by_role("button", name="Create tree").click()
        j.see_heading("At the door")
        j.snap("tree")

        # Ask Maren for replies (the worker writes them), keep one, then branch the player's answer two ways.
        ask = page.locator("form:has(button:text('Get replies'))")
        ask.get_by_label("Character").select_option(label="Maren")
        ask.get_by_label("The player says").fill("Is the lamp lit?")
        ask.get_by_label("Candidate replies").fill("2")
        ask.get_by_label("Length (tokens)").fill("12")
        ask.get_by_label("Seed").fill("3")
        ask.get_by_role("button", name="Get replies").click()
        j.snap("tree-asking")
        page.locator("#candidates").wait_for(timeout=120_000)
        assert "Replies of Maren to “Is the lamp lit?”" in page.locator("#candidates").inner_text()
        replies = page.locator("#candidates textarea")
        assert replies.count() >= 1
        j.snap("tree-replies")
        replies.first.fill("The lamp is lit, keeper's honour.")
        page.locator("#candidates li").first.get_by_role("button", name="Accept").click()
        assert "Added the exchange to the tree." in page.locator(".messages").inner_text()
        outline = page.locator("#outline")
        assert "Player: Is the lamp lit?" in outline.inner_text()
        assert "Maren: The lamp is lit, keeper's honour." in outline.inner_text()
        line = page.locator("form:has(button:text('Add line'))")
        for choice, text in (("Offer help", "Then I will help you watch it."), ("Walk away", "Then I will go.")):
            line.get_by_label("Who speaks").select_option(label="Player")
            after = line.get_by_label("After the line")
            after.select_option(after.locator("option", has_text="Maren: The lamp is lit").get_attribute("value"))
            line.get_by_label("Text", exact=True).fill(text)
            line.get_by_label("Choice text").fill(choice)
            line.get_by_role("button", name="Add line").click()
            assert f"[{choice}] → #" in page.locator("#outline").inner_text()
        j.snap("tree-branched")

        # Exports a game engine loads.
        name, exported = download(page, "JSON")
        assert name.endswith(".json")
        data = json.loads(exported)
        maren = next(node for node in data["nodes"] if node["speaker"] == "Maren")
        assert sorted(c["text"] for c in maren["choices"]) == ["Offer help", "Walk away"]
        name, ink = download(page, "Ink")
        assert "+ [Offer help] -> " in ink and "+ [Walk away] -> " in ink
        name, yarn = download(page, "Yarn Spinner")
        assert "Offer help" in yarn and "Walk away" in yarn
        j.check()
