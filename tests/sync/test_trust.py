"""The sync agent's trust rules in memory (sync_agent.trust): no server, no files, one rule per test.

The end-to-end tests (test_agent.py, test_freeze.py, test_agent_attacks.py) show the agent applies these verdicts:
records what they teach, raises their refusal, installs nothing on a refusal.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.core.catalog import models_mismatch
from sync_agent.bundle import MAX_VERSION_STEP, bundle_of, encode_signature, json_bytes
from sync_agent.errors import BundleError, SignatureError, StaleManifestError
from sync_agent.trust import CLOCK_SKEW_S, Trusted, Verdict, accept_manifest, accept_unchanged

KEY = Ed25519PrivateKey.generate()
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
EMBEDDER, VERIFIER = "e" * 64, "sift-n512-s512"
DEVICE = Trusted("shelf", EMBEDDER, VERIFIER, active=3, highest=3, fresh_until="2026-12-06T13:00:00+00:00")


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def manifest(version: int = 4, expires: str | None = at(86400), catalog_id: str = "shelf", embedder: str = EMBEDDER,
             verifier: str = VERIFIER, **extra) -> bytes:
    models = {"embedder": {"model_id": embedder}, "verifier": {"id": verifier}}
    return json_bytes(bundle_of(catalog_id, version, models, [], {}, None, at(-60), expires).manifest | extra)


def judge(data: bytes, trusted: Trusted = DEVICE, signature: bytes | None = None, now: datetime = NOW) -> Verdict:
    signature = encode_signature(KEY.sign(data)) if signature is None else signature
    return accept_manifest(data, signature, KEY.public_key(), trusted, now, "https://cdn/catalogs/shelf/manifest.json")


def test_a_newer_signed_manifest_in_date_for_this_devices_models_is_installed():
    verdict = judge(manifest(4))
    assert verdict.refusal is None and verdict.install["version"] == 4
    assert verdict.learned == {"fresh_until": at(86400), "stale": False}


def test_a_manifest_changed_after_signing_is_refused_and_teaches_nothing():
    data = manifest(4)
    verdict = judge(data.replace(b'"version":4', b'"version":5'), signature=encode_signature(KEY.sign(data)))
    assert isinstance(verdict.refusal, SignatureError) and verdict.install is None and verdict.learned is None


def test_a_manifest_signed_by_another_key_is_refused():
    data = manifest(4)
    verdict = judge(data, signature=encode_signature(Ed25519PrivateKey.generate().sign(data)))
    assert isinstance(verdict.refusal, SignatureError) and verdict.install is None


def test_a_signature_that_is_not_base64_is_refused():
    verdict = judge(manifest(4), signature=b"not base64 !!")
    assert isinstance(verdict.refusal, BundleError) and "not base64" in str(verdict.refusal)


def test_a_signed_manifest_off_the_schema_is_refused():
    verdict = judge(manifest(4, surprise=1))
    assert isinstance(verdict.refusal, BundleError) and "manifest.schema.json" in str(verdict.refusal)


def test_a_manifest_for_another_catalog_is_refused_naming_both():
    verdict = judge(manifest(4, catalog_id="other"))
    assert "manifest is for catalog 'other', this device follows 'shelf'" in str(verdict.refusal)
    assert verdict.refusal.args[0].startswith("https://cdn/catalogs/shelf/manifest.json: ")


def test_a_manifest_without_expiry_after_ones_with_it_is_refused_as_a_replay():
    verdict = judge(manifest(4, expires=None))
    assert "carries no expiry, yet earlier ones did" in str(verdict.refusal) and verdict.install is None


def test_a_manifest_without_expiry_is_accepted_by_a_device_that_never_saw_one():
    verdict = judge(manifest(4, expires=None), Trusted("shelf", EMBEDDER, VERIFIER, 3, 3, None))
    assert verdict.install is not None and verdict.learned == {}


def test_an_expiry_past_the_clock_allowance_is_stale_recorded_and_refused():
    verdict = judge(manifest(4, expires=at(-CLOCK_SKEW_S - 60)))
    assert isinstance(verdict.refusal, StaleManifestError) and "keeping catalog v3" in str(verdict.refusal)
    assert verdict.learned == {"fresh_until": at(-CLOCK_SKEW_S - 60), "stale": True} and verdict.install is None


def test_an_expiry_within_the_clock_allowance_is_still_fresh():
    assert judge(manifest(4, expires=at(-CLOCK_SKEW_S + 60))).learned["stale"] is False


@pytest.mark.parametrize("expires", ["next tuesday", "2026-12-06T12:00:00"])
def test_an_expiry_that_is_not_an_aware_iso_time_is_refused(expires):
    verdict = judge(manifest(4).replace(at(86400).encode(), expires.encode()))
    assert isinstance(verdict.refusal, BundleError) and verdict.learned is None


def test_the_active_version_again_is_unchanged_and_its_expiry_recorded():
    verdict = judge(manifest(3, expires=at(7200)))
    assert verdict == Verdict(learned={"fresh_until": at(7200), "stale": False}, judged=True)


def test_an_older_version_is_refused_even_when_properly_signed_and_remembered():
    verdict = judge(manifest(2))
    assert "version 2 is not newer than v3" in str(verdict.refusal) and verdict.judged and verdict.install is None


def test_after_a_rollback_the_version_rolled_back_from_is_not_installed_again():
    verdict = judge(manifest(3), Trusted("shelf", EMBEDDER, VERIFIER, active=2, highest=3))
    assert "version 3 is not newer than v3" in str(verdict.refusal)


def test_a_version_jumping_too_far_is_refused_but_a_first_install_takes_any_version():
    assert f"jumps more than {MAX_VERSION_STEP} above v3" in str(judge(manifest(3 + MAX_VERSION_STEP + 1)).refusal)
    assert judge(manifest(3 + MAX_VERSION_STEP)).install is not None
    assert judge(manifest(2_000_000_000), Trusted("shelf", EMBEDDER, VERIFIER)).install is not None


@pytest.mark.parametrize("models", [{"embedder": "f" * 64}, {"verifier": "sift-n1024-s512-up"}])
def test_a_catalog_for_other_models_is_refused_in_the_words_a_catalog_folder_is(models):
    data = manifest(4, **models)
    verdict = judge(data)
    built = {"embedder": {"model_id": models.get("embedder", EMBEDDER)}, "verifier": {"id": models.get("verifier", VERIFIER)}}
    assert str(verdict.refusal) == f"catalog v4: {models_mismatch(built, EMBEDDER, VERIFIER)}; refused"
    assert verdict.learned["stale"] is False  # authentic and in date: its expiry is still worth recording


def test_the_rules_apply_in_order_stale_before_version_and_models():
    verdict = judge(manifest(2, expires=at(-2 * CLOCK_SKEW_S), embedder="f" * 64))
    assert isinstance(verdict.refusal, StaleManifestError)


def test_a_304_keeps_the_catalog_while_the_last_expiry_holds_then_turns_stale():
    assert accept_unchanged(DEVICE, NOW) == Verdict(learned={"fresh_until": DEVICE.fresh_until, "stale": False})
    later = NOW + timedelta(seconds=3600 + CLOCK_SKEW_S + 1)
    verdict = accept_unchanged(DEVICE, later)
    assert isinstance(verdict.refusal, StaleManifestError) and verdict.learned["stale"] is True


def test_a_304_for_a_device_whose_manifests_never_expire_is_simply_unchanged():
    assert accept_unchanged(Trusted("shelf", EMBEDDER, VERIFIER, 3, 3), NOW) == Verdict(learned={})
