"""Config validation: every bad-config case gets its own clear message."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edge.core.config import Config
from edge.core.config_file import load_config
from edge.core.errors import ConfigError, ConfigFileError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_example_config_is_valid_and_documents_every_key():
    config = load_config(REPO / "config.example.yaml")
    assert config.device.id == "shelf-001"
    assert config.decision == Config().decision  # installers start from the example: it decides as a device does by default
    text = (REPO / "config.example.yaml").read_text()
    for section, model in Config.model_fields.items():
        assert f"\n{section}:" in text
        for key in model.annotation.model_fields:
            assert f" {key}:" in text, f"{section}.{key} missing from config.example.yaml"


def test_every_field_has_a_description():
    for section, field in Config.model_fields.items():
        assert field.description, section
        for key, sub in field.annotation.model_fields.items():
            assert sub.description, f"{section}.{key}"


def test_empty_mapping_gives_laptop_defaults(tmp_path):
    config = load_config(write(tmp_path, "{}\n"))
    assert config.models.backend == "auto"
    assert config.outbox_path == config.device.data_dir / "outbox.sqlite"


def test_empty_file_is_reported_as_empty(tmp_path):
    assert problems(tmp_path, "") == [
        "(file): the file is empty — write at least one section, or `{}` for all defaults"]


def test_top_level_list_is_rejected(tmp_path):
    [line] = problems(tmp_path, "- a\n- b\n")
    assert "a list at the top level" in line


def test_wrong_type_names_key_value_and_line(tmp_path):
    [line] = problems(tmp_path, "camera:\n  width: wide\n")
    assert line.startswith("camera.width: 'wide' — ") and "integer" in line and "(line 2)" in line


def test_unknown_key_lists_allowed_keys(tmp_path):
    [line] = problems(tmp_path, "mqtt:\n  hots: broker\n")
    assert line.startswith("mqtt.hots: unknown key — allowed here: enabled, host, port")
    assert "(line 2)" in line


def test_unknown_section(tmp_path):
    [line] = problems(tmp_path, "cameras: {}\n")
    assert "cameras: unknown key — allowed here: device, camera, models" in line


def test_out_of_range_number(tmp_path):
    [line] = problems(tmp_path, "mqtt:\n  port: 70000\n")
    assert line == "mqtt.port: 70000 — Input should be less than or equal to 65535 (line 2)"


def test_cross_field_rule(tmp_path):
    [line] = problems(tmp_path, "camera:\n  reconnect_min_s: 60\n  reconnect_max_s: 1\n")
    assert "reconnect_min_s must not exceed reconnect_max_s" in line


def test_lsh_bits_must_be_whole_bytes(tmp_path):
    [line] = problems(tmp_path, "index:\n  lsh_bits: 500\n")
    assert line == "index.lsh_bits: 500 — must be a multiple of 8 (line 2)"


def test_missing_tls_file(tmp_path):
    [line] = problems(tmp_path, "mqtt:\n  tls:\n    ca_file: /nonexistent/ca.pem\n")
    assert line == "mqtt.tls.ca_file: '/nonexistent/ca.pem' — ca file not found: no file at /nonexistent/ca.pem (line 3)"


def test_tls_cert_without_key(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    [line] = problems(tmp_path, f"mqtt:\n  tls:\n    cert_file: {cert}\n")
    assert "cert_file and key_file go together" in line


def test_password_in_yaml_is_refused_with_where_it_belongs(tmp_path):
    [line] = problems(tmp_path, "mqtt:\n  password: hunter2\n")
    assert line.startswith("mqtt.password: secrets are not read from the YAML") and "password_file" in line
    assert "hunter2" not in line


def test_password_file_that_is_a_directory(tmp_path):
    [line] = problems(tmp_path, f"mqtt:\n  password_file: {tmp_path}\n")
    assert "must be a regular file" in line


def test_unreadable_password_file(tmp_path):
    """A mode-000 file; as root (CI) the check drops to `nobody` after imports, for whom it is unreadable."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    secret.chmod(0o000)
    config = write(tmp_path, f"mqtt:\n  password_file: {secret}\n")
    for folder in (tmp_path, *tmp_path.parents):  # pytest's temporary folders are 0700, under xdist one level deeper
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(0o755)
    code = ("import os, sys; import edge.cli, edge.core.config_file\n"
            "if os.geteuid() == 0: os.setuid(65534)\n"
            f"sys.exit(edge.cli.main(['check-config', {str(config)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1, run.stderr
    assert "this user cannot read it (mode 0)" in run.stderr


def test_secret_from_file_credential_or_environment(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    config = load_config(write(tmp_path, f"mqtt:\n  password_file: {secret}\n"))
    assert config.mqtt.password() == "from-file"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_config(write(tmp_path, "{}\n")).mqtt.password() == "from-credential"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    monkeypatch.setenv("SHELFID_MQTT_PASSWORD", "from-env")
    assert load_config(write(tmp_path, "{}\n")).mqtt.password() == "from-env"


def test_sync_needs_a_public_key(tmp_path):
    [line] = problems(tmp_path, "sync:\n  server_url: https://catalog.example.com\n")
    assert "unsigned catalogs are never accepted" in line


def test_several_problems_all_listed(tmp_path):
    lines = problems(tmp_path, "camera:\n  fps: 0\nmqtt:\n  port: 0\nlogging:\n  level: LOUD\n")
    assert [line.split(":")[0] for line in lines] == ["camera.fps", "mqtt.port", "logging.level"]


def test_not_yaml_and_missing_file_are_file_errors(tmp_path):
    with pytest.raises(ConfigFileError, match=r"not valid YAML: .* line 2"):
        load_config(write(tmp_path, "camera: [1,\n"))
    with pytest.raises(ConfigFileError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_default_paths_are_expanded():
    config = Config()
    assert "~" not in str(config.device.data_dir) and config.device.data_dir.is_absolute()
    assert "~" not in str(config.models.engine_cache_dir)


def test_a_config_with_the_replaced_max_appearance_still_loads_and_says_what_replaced_it(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("verifier:\n  max_appearance: 7.0\n")
    with caplog.at_level("WARNING"):
        config = load_config(old)
    assert config.decision.max_differing == Config().decision.max_differing
    assert "decision.max_differing" in caplog.text and "max_appearance is no longer used" in caplog.text
    old.write_text("verifier:\n  max_appearance: null\n")  # null turned the check off, and still does
    assert load_config(old).decision.max_differing is None
    old.write_text("verifier:\n  max_appearance: null\n  max_differing: 0.2\n")  # the newer key wins
    assert load_config(old).decision.max_differing == 0.2
    old.write_text("verifier:\n  max_appearance: null\ndecision:\n  max_differing: 0.2\n")
    assert load_config(old).decision.max_differing == 0.2


OLD_DECISION = ("verifier:\n  kind: sift\n  decision: calibrated\n  calibration: {cal}\n  min_inliers: 12\n"
                "  min_inlier_ratio: 0.1\n  max_differing: null\n  candidates: 4\n")
NEW_DECISION = ("verifier:\n  kind: sift\n  candidates: 4\ndecision:\n  kind: calibrated\n  calibration: {cal}\n"
                "  min_inliers: 12\n  min_inlier_ratio: 0.1\n  max_differing: null\n")


def test_the_decisions_settings_under_verifier_still_load_into_decision_with_one_line_each_naming_the_new_key(tmp_path, caplog):
    cal = tmp_path / "decision.json"
    with caplog.at_level("WARNING", logger="edge.core.config"):
        old = load_config(write(tmp_path, OLD_DECISION.format(cal=cal)))
    assert old == load_config(write(tmp_path, NEW_DECISION.format(cal=cal)))
    assert (old.decision.kind, old.decision.calibration, old.decision.min_inliers) == ("calibrated", cal, 12)
    assert (old.decision.min_inlier_ratio, old.decision.max_differing, old.verifier.candidates) == (0.1, None, 4)
    assert [r.getMessage() for r in caplog.records] == [
        f"config: verifier.{key} is now decision.{new}; move it there (the old key is still read)"
        for key, new in [("decision", "kind"), ("calibration", "calibration"), ("min_inliers", "min_inliers"),
                         ("min_inlier_ratio", "min_inlier_ratio"), ("max_differing", "max_differing")]]
    both = load_config(write(tmp_path, "verifier:\n  min_inliers: 12\ndecision:\n  min_inliers: 20\n"))
    assert both.decision.min_inliers == 20  # the new key wins
    assert problems(tmp_path, "verifier:\n  min_inliers: 2\n") == [
        "decision.min_inliers: 2 — Input should be greater than or equal to 4 (line 1)"]


def test_moving_the_decisions_settings_keeps_the_verifier_id_so_catalogs_built_before_still_load(tmp_path, sample_catalog_dir):
    """The verifier id a catalog records (catalog compatibility) is the matcher's settings alone: the decision's keys,
    wherever they are written, do not change it, and the default is the id catalogs built before carry."""
    from edge.core.catalog import load_catalog
    from edge.core.verifier import open_verifier

    cal = tmp_path / "decision.json"
    ids = {open_verifier(load_config(write(tmp_path, text.format(cal=cal))).verifier).id
           for text in ("{{}}\n", OLD_DECISION, NEW_DECISION)}
    assert ids == {"sift-n1024-s512-up"}  # models/weights/decision-sift-n1024-s512-up.json was fitted for it
    assert load_catalog(sample_catalog_dir, verifier_id=ids.pop()).info["verifier"]["id"] == "sift-n1024-s512-up"


def test_the_kinds_a_config_may_name_are_the_kinds_the_registries_open():
    """The config's Literals and the registries state the kinds twice; they must agree (an added verifier or backend
    that the config refuses, or a config kind nothing opens, fails here)."""
    from typing import get_args

    from edge.core.config import ModelsConfig, VerifierConfig
    from edge.core.verifier import VERIFIERS
    from models.backends import BACKENDS

    assert set(get_args(VerifierConfig.model_fields["kind"].annotation)) == set(VERIFIERS)
    assert set(get_args(ModelsConfig.model_fields["backend"].annotation)) == {"auto", *BACKENDS}
