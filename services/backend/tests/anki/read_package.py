"""Imports an Anki package into a fresh collection with Anki's own library and prints, as JSON,
what Anki then holds: note types, notes (fields and tags), cards (type, queue, interval, reps,
lapses) and the review log. Used by tests/anki.rs: `python read_package.py <package.apkg>`."""

import json
import sys
import tempfile
from pathlib import Path

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest


def main(package: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        col = Collection(str(Path(folder) / "collection.anki2"))
        try:
            col.import_anki_package(
                ImportAnkiPackageRequest(
                    package_path=package,
                    options=ImportAnkiPackageOptions(with_scheduling=True),
                )
            )
            notes = []
            for note_id in col.find_notes(""):
                note = col.get_note(note_id)
                notetype = note.note_type()
                notes.append(
                    {
                        "notetype": notetype["name"],
                        "cloze": notetype["type"] == 1,
                        "fields": dict(note.items()),
                        "tags": sorted(note.tags),
                        "cards": [
                            {
                                "ord": card.ord,
                                "type": card.type,
                                "queue": card.queue,
                                "ivl": card.ivl,
                                "reps": card.reps,
                                "lapses": card.lapses,
                                "deck": col.decks.name(card.did),
                                "question": card.question(),
                            }
                            for card in note.cards()
                        ],
                    }
                )
            print(
                json.dumps(
                    {
                        "notes": sorted(notes, key=lambda note: list(note["fields"].values())[0]),
                        "revlog": col.db.scalar("select count() from revlog"),
                        "revlog_eases": col.db.list("select ease from revlog order by id"),
                    }
                )
            )
        finally:
            col.close()


if __name__ == "__main__":
    main(sys.argv[1])
