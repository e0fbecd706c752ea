"""The manual (docs/, built by MkDocs) and the front door (README.md, CHANGELOG.md): they build with --strict, the
configuration reference is what the schema says, the payload examples follow the JSON schemas, every command is
listed, and no user-facing page carries tracker numbers or grows back into a lab notebook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jsonschema
import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
EXAMPLE = re.compile(r"<!-- validate: (?P<schema>\S+) -->\n```json\n(?P<body>.*?)\n```", re.S)


def test_the_manual_builds_with_strict(tmp_path):
    """A broken link or anchor, a missing page, or a page left out of the nav fails the build (mkdocs.yml's
    validation is set to warn, and --strict turns warnings into a failure)."""
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "mqtt.html").exists()


def test_the_configuration_reference_is_what_the_schema_says():
    from tools.config_reference import PAGE, page

    assert PAGE.read_text(encoding="utf-8") == page(), "docs/configuration.md is stale: run python -m tools.config_reference --write"


def test_the_configuration_reference_names_every_key():
    from edge.core.config import Config

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for section, field in Config.model_fields.items():
        for key in field.annotation.model_fields:
            assert f"| `{section}.{key}` |" in text, f"{section}.{key}"


def examples() -> list[tuple[str, str, dict]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for match in EXAMPLE.finditer(page.read_text(encoding="utf-8")):
            found.append((page.name, match["schema"], json.loads(match["body"])))
    return found


@pytest.mark.parametrize("page,schema,payload", examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_payload_example_follows_its_schema(page, schema, payload):
    jsonschema.validate(payload, json.loads((REPO / schema).read_text()), format_checker=jsonschema.FormatChecker())


def test_the_mqtt_page_shows_every_event_type_a_second_event_and_a_replay():
    schema = json.loads((REPO / "schemas" / "event.schema.json").read_text())
    events = [payload for page, name, payload in examples() if page == "mqtt.md" and name.endswith("event.schema.json")]
    assert {e["type"] for e in events} == set(schema["properties"]["type"]["enum"])
    by_track = {}
    for e in events:
        by_track.setdefault(e["track_id"], []).append(e)
    assert any([x["type"] for x in sorted(es, key=lambda x: x["seq"])] == ["unknown", "identified"] for es in by_track.values())
    assert any(e["replayed"] for e in events)
    assert len({e["event_id"] for e in events}) == len(events)


def test_the_commands_page_names_every_subcommand():
    from edge.cli import subcommand_parsers

    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    for name in subcommand_parsers():
        assert f"`shelfid {name}" in text, name


def test_the_readme_is_a_front_door():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / target).exists(), target


@pytest.mark.parametrize("path", ["README.md", "CHANGELOG.md", *(f"docs/{p.name}" for p in sorted(DOCS.glob("*.md")))])
def test_user_facing_text_carries_no_issue_numbers(path):
    text = (REPO / path).read_text(encoding="utf-8")
    assert not re.findall(r"\b(?:issue|Issue)s? \d+|#\d{2,}\b", text)


def test_the_changelog_keeps_a_changelog():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog") and "## [Unreleased]" in text
    for heading in re.findall(r"^### (.+)$", text, re.M):
        assert heading in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, heading
