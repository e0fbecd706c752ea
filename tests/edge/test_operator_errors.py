"""An operator's first day: each mistake seen on a fresh device gets one readable line, the right exit code, nothing silent."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading

import pytest

from edge import cli
from edge.core.config import MQTTConfig
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox
from edge.reporting.sinks import OutboxSink
from tests.conftest import REPO
from tools.mqtt_harness import Broker, free_port


def shelfid(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "SHELFID_CONFIG"} | (env or {})
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO, env=environment,
                          timeout=timeout)


def one_error_line(run: subprocess.CompletedProcess) -> str:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr, run.stderr
    assert lines and lines[-1].startswith("error: "), run.stderr
    return lines[-1]


@pytest.mark.parametrize("command", [["doctor"], ["run"], ["sync", "--once"], ["events", "--timeout", "1"], ["check-config"]])
def test_device_commands_read_one_default_config_and_say_which_when_it_is_missing(tmp_path, command):
    missing = tmp_path / "nowhere.yaml"
    run = shelfid(*command, env={"SHELFID_CONFIG": str(missing)})
    assert run.returncode == 2
    assert one_error_line(run).startswith(f"error: {missing}: no such config file")


def test_every_command_with_a_config_names_the_same_default_in_its_help():
    for name, parser in cli.subcommand_parsers().items():
        options = {o for a in parser._actions for o in a.option_strings}
        if "--config" in options or name == "check-config":
            assert "$SHELFID_CONFIG, else /etc/shelfid/config.yaml" in " ".join(parser.format_help().split()), name


def test_the_config_from_the_environment_is_used(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("device: {id: shelf-9}\n")
    run = shelfid("check-config", env={"SHELFID_CONFIG": str(config)})
    assert run.returncode == 0 and f"{config}: valid — device shelf-9" in run.stdout


def test_check_config_refuses_the_page_beyond_loopback_without_a_token(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("web: {enabled: true, host: 0.0.0.0}\n")
    run = shelfid("check-config", str(config), env={"SHELFID_WEB_TOKEN": ""})
    assert run.returncode == 1
    assert "web.host: 0.0.0.0 — beyond loopback the page needs a token" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("server_url, hint", [(None, "shelfid catalog build"), ("http://127.0.0.1:9", "shelfid sync --once")])
def test_run_before_the_first_catalog_says_how_to_get_one(tmp_path, server_url, hint):
    config = tmp_path / "c.yaml"
    sync = f"sync: {{server_url: '{server_url}', public_key_file: {REPO / 'README.md'}}}\n" if server_url else ""
    config.write_text(f"device: {{data_dir: {tmp_path / 'data'}}}\nmqtt: {{enabled: false}}\n{sync}")
    run = shelfid("run", "--config", str(config))
    assert run.returncode == 1
    line = one_error_line(run)
    assert "catalogs/current: no catalog on this device yet" in line and hint in line


def test_help_shows_defaults_and_names_the_bundled_embedder():
    serve = " ".join(cli.subcommand_parsers()["catalog serve"].format_help().split())
    assert "default 127.0.0.1" in serve and "default 8080" in serve and "default: on" in serve
    export = cli.subcommand_parsers()["models export-embedder"].format_help()
    assert "EfficientNet-Lite0" in export


@pytest.fixture
def root_logging():
    """cli.main sets the root handlers (to this test's captured stderr): put them back for the tests after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_an_unexpected_failure_is_one_line_unless_debug_is_asked_for(monkeypatch, capsys, root_logging):
    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr("models.metadata.describe_onnx", broken)  # what `models info` calls, looked up when it runs
    assert cli.main(["models", "info", "x.onnx"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: unexpected RuntimeError: boom (run with --log-level DEBUG for the traceback)"
    with pytest.raises(RuntimeError):
        cli.main(["--log-level", "DEBUG", "models", "info", "x.onnx"])


def test_third_party_chatter_stays_out_of_the_operators_output(tmp_path):
    run = shelfid("catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out", str(tmp_path / "c"))
    assert run.returncode == 0, run.stderr
    assert "faiss" not in run.stderr and "AVX" not in run.stderr
    assert [line for line in run.stderr.splitlines() if line.strip()] == [line for line in run.stderr.splitlines()
                                                                          if "INFO edge.core.catalog_build" in line]


def test_events_on_a_wrong_port_says_so_and_gives_up_after_the_timeout(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"mqtt: {{host: 127.0.0.1, port: {free_port()}}}\n")
    run = shelfid("events", "--config", str(config), "--timeout", "3")
    assert run.returncode == 1
    assert run.stdout.splitlines()[0].startswith("connecting to 127.0.0.1:")
    assert "cannot connect to 127.0.0.1:" in run.stdout and "check mqtt.host, mqtt.port" in run.stdout
    assert one_error_line(run).startswith("error: could not connect to 127.0.0.1:") and "within 3 s" in run.stderr


@pytest.fixture
def locked_broker(tmp_path):
    broker = Broker(tmp_path / "broker", users={"shelf": "right"}).start()
    yield broker
    broker.kill()


def test_events_with_a_wrong_password_is_refused_in_one_line(tmp_path, locked_broker):
    (tmp_path / "pw").write_text("wrong\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"mqtt: {{host: 127.0.0.1, port: {locked_broker.port}, username: shelf, password_file: {tmp_path / 'pw'}}}\n")
    run = shelfid("events", "--config", str(config), "--timeout", "20")
    assert run.returncode == 1
    line = one_error_line(run)
    assert "refused the login" in line and "check mqtt.username and mqtt.password_file" in line


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []
        self.refusals = threading.Semaphore(0)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if "connect refused" in record.getMessage():
            self.refusals.release()


def test_a_refused_login_is_one_line_each_time_and_no_unspecified_disconnect(tmp_path, locked_broker):
    lines = Lines()
    logging.getLogger("edge.reporting.mqtt").addHandler(lines)
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=locked_broker.port, username="shelf"), "dev", Outbox(tmp_path / "o.sqlite"))
    reporter.start()
    try:
        assert lines.refusals.acquire(timeout=20) and lines.refusals.acquire(timeout=20)  # two attempts seen
    finally:
        reporter.stop(timeout=1)
        logging.getLogger("edge.reporting.mqtt").removeHandler(lines)
    assert not [m for m in lines.messages if "disconnected" in m], lines.messages


def test_stopping_with_events_still_unsent_says_how_many(tmp_path, caplog):
    outbox = Outbox(tmp_path / "o.sqlite")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=free_port()), "dev", outbox)
    reporter.start()
    sink = OutboxSink(outbox, reporter)
    for i in range(3):
        outbox.add(f"e{i}", "shelfid/dev/events", json.dumps({"event_id": f"e{i}"}).encode())
    with caplog.at_level(logging.WARNING, logger="edge.reporting.sinks"):
        sink.close()
    assert any("stopped with 3 events in the outbox" in r.getMessage() and "sent at the next start" in r.getMessage()
               for r in caplog.records)


def test_the_readme_subscriber_command_receives_the_events(tmp_path):
    """`mosquitto_sub` as the manual (docs/mqtt.md) tells operators to subscribe (make installs mosquitto-clients)."""
    sub = shutil.which("mosquitto_sub")
    assert sub, "mosquitto_sub is missing: `make test` installs mosquitto-clients"
    broker = Broker(tmp_path / "broker").start()
    outbox = Outbox(tmp_path / "o.sqlite")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "shelf-001", outbox)
    reporter.start()
    assert reporter.connected.wait(10)
    listener = subprocess.Popen([sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "shelfid/+/events", "-t", "shelfid/+/status",
                                 "-q", "1", "-v", "-C", "3", "-W", "30"], stdout=subprocess.PIPE, text=True)
    try:
        # the retained `online` arrives as soon as the subscription is in place: then the events are sent
        assert listener.stdout.readline().strip() == "shelfid/shelf-001/status online"
        for i in range(2):
            outbox.add(f"ev-{i}", "shelfid/shelf-001/events", json.dumps({"event_id": f"ev-{i}"}).encode())
        reporter.wake()
        lines = [listener.stdout.readline().strip() for _ in range(2)]
        assert listener.wait(30) == 0
    finally:
        listener.kill()
        reporter.stop()
        broker.kill()
    assert [line.split(" ", 1)[0] for line in lines] == ["shelfid/shelf-001/events"] * 2
    assert [json.loads(line.split(" ", 1)[1]) for line in lines] == [{"event_id": "ev-0"}, {"event_id": "ev-1"}]


def test_doctor_names_what_a_first_day_breaks(tmp_path, monkeypatch):
    from edge.core.config import Config
    from edge.doctor import check_outbox, check_sync, check_web

    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    config = Config.model_validate({"device": {"data_dir": str(tmp_path)}, "web": {"enabled": True, "host": "0.0.0.0"},
                                    "sync": {"server_url": f"http://127.0.0.1:{free_port()}", "catalog_id": "shelf",
                                             "public_key_file": str(REPO / "README.md")}})
    web = check_web(config)
    assert web.state == "fail" and "beyond loopback the page needs a token" in web.detail
    sync = check_sync(config)
    assert sync.state == "fail" and "127.0.0.1" in sync.detail and "sync.server_url" in sync.fix
    outbox = Outbox(config.outbox_path)
    outbox.add("e1", "shelfid/dev/events", b"{}")
    outbox.close()
    backlog = check_outbox(config)
    assert backlog.state == "warn" and "1 events not yet acknowledged" in backlog.detail
