"""Issue 63 #3: one rule for when two names are one name (``rbv.formats.names.name_key``),
wherever names meet: a person looked up by name, a name given to a second person, a
merge of named persons, a sidecar's region and Immich's person for ours. Before, SQL
compared with ``lower`` (no Unicode case folding: "STRASSE" was not "Straße", and under
the C locale "ÉMILE" was not "émile") while Python casefolded, and the sidecar and
Immich matches did not take ``_`` as a space."""

from __future__ import annotations

import json
import unicodedata

import pytest

from rbv.config import Settings
from rbv.formats.names import name_key
from rbv.formats.regions import same_name
from rbv.store import open_database
from rbv.store.queries.person_lookup import person_named, resolve_person
from tests.conftest import run_cli

# (a name given, another spelling of it, a name that is another person's)
HOSTILE = [
    ("Straße Müller", "STRASSE MÜLLER", "Strase Muller"),
    ("Émile_Zola", "émile zola", "Emile Zola"),
    ("ΟΔΥΣΣΕΥΣ", "οδυσσευς", "οδυσσευ"),
    ("ǅemal Bijedić", "džemal bijedić", "dzemal bijedic"),
    ("  Ada Lovelace ", "ada_lovelace", "Ada  Lovelace"),
    ("Zoë Saldaña", unicodedata.normalize("NFD", "zoë saldaña"), "Zoe Saldana"),
]


@pytest.mark.parametrize(("name", "same", "other"), HOSTILE)
def test_the_key_takes_a_spelling_as_the_name_and_no_other(name: str, same: str,
                                                            other: str) -> None:
    assert name_key(name) == name_key(same) != name_key(other)
    assert same_name(name, same) and not same_name(name, other)  # a sidecar's region


def test_the_database_matches_names_by_the_same_key(cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Each hostile name given to a person through the CLI: looked up by its other
    spelling it is that person, the other name is no one, a second person given the
    other spelling is refused as a name in use, and a merge of the two keeps it."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json", "--limit",
                                 "0").stdout)
    assert len(persons) >= 2 * len(HOSTILE)
    db = open_database(faces_settings)
    for k, (name, same, other) in enumerate(HOSTILE):
        first, second = persons[2 * k]["id"], persons[2 * k + 1]["id"]
        assert run_cli(cli, "-d", url, "persons", "name", first, name).exit_code == 0
        with db.connect() as conn:
            pack = conn.execute("SELECT pack_id FROM persons WHERE id = %s",
                                (first,)).fetchone()[0]
            assert str(resolve_person(conn, same)) == first, same
            assert str(person_named(conn, pack, same)) == first, same
            assert person_named(conn, pack, other) is None, other
        refused = run_cli(cli, "-d", url, "persons", "name", second, same)
        assert refused.exit_code == 1 and "is already named" in refused.output, same
        assert run_cli(cli, "-d", url, "persons", "name", second, same, "--force"
                       ).exit_code == 0
        # two persons of one name by the key: a merge is not refused as of two names
        merged = run_cli(cli, "-d", url, "persons", "merge", first, second, "--dry-run")
        assert "different names" not in merged.output, merged.output
    # rbv audit finds each such pair a name held twice, by the same key (its SQL
    # grouped by lower(), which left "STRASSE MÜLLER" and "Straße Müller" apart)
    audit = run_cli(cli, "-d", url, "audit", "--json")
    twice = {name_key(d["name"]): len(d["persons"])
             for d in json.loads(audit.stdout)["duplicate_names"]}
    assert {name_key(name): twice.get(name_key(name)) for name, _, _ in HOSTILE} == {
        name_key(name): 2 for name, _, _ in HOSTILE}
