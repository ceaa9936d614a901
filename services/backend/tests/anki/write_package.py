"""Writes an Anki package the way Anki does, with Anki's own library: a deck "Biology" with a
Basic note (HTML in its fields, two tags) and a Cloze note with two deletions, studied with
Anki's scheduler (the Basic card rated Good; the first cloze Again, then Good; the second not
studied), so the package carries a review history. Used by
tests/anki.rs: `python write_package.py <out.apkg> modern|legacy` (modern: Anki's default
collection.anki21b; legacy: "support older Anki versions", collection.anki21)."""

import sys
import tempfile
from pathlib import Path

from anki.collection import Collection, DeckIdLimit, ExportAnkiPackageOptions


def study(col: Collection, search: str, eases: list[int]) -> None:
    """Answers the one card `search` finds with each ease in turn, as a learner would."""
    (card_id,) = col.find_cards(search)
    for ease in eases:
        card = col.get_card(card_id)
        card.start_timer()
        col.sched.answerCard(card, ease)


def main(out: str, kind: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        col = Collection(str(Path(folder) / "collection.anki2"))
        try:
            deck = col.decks.id("Biology")
            basic = col.new_note(col.models.by_name("Basic"))
            basic["Front"] = "What does <b>chlorophyll</b> absorb?"
            basic["Back"] = "Red&nbsp;and blue light<br>mostly"
            basic.tags = ["bio", "plants"]
            col.add_note(basic, deck)
            cloze = col.new_note(col.models.by_name("Cloze"))
            cloze["Text"] = "{{c1::Mitochondria}} make {{c2::ATP}}."
            cloze["Back Extra"] = "Cells"
            col.add_note(cloze, deck)
            study(col, f"nid:{basic.id}", [3])
            study(col, f"nid:{cloze.id} card:1", [1, 3])
            col.export_anki_package(
                out_path=out,
                options=ExportAnkiPackageOptions(
                    with_scheduling=True, with_media=False, legacy=kind == "legacy"
                ),
                limit=DeckIdLimit(deck_id=deck),
            )
        finally:
            col.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
