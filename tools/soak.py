"""A week compressed into an hour: the daemon on a looping RTSP camera, with MQTT on, the broker restarted and the
catalog switched on a schedule and the installer's page polled, sampled from outside every few seconds.

    python -m tools.soak --minutes 60 --out soak-out

Samples (soak-out/samples.csv): the daemon's RSS, open files and threads (from /proc), the outbox's rows, file and
WAL sizes, identification latency p95 and FPS (from its MQTT stats), the camera state, the page's answer. Writes
soak-out/soak.png and ends with one line of growth figures, measured after `--warmup-min`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tqdm import tqdm

from edge.core.datadir import DataDir
from tools.mqtt_harness import Broker, Recorder, free_port
from tools.rtsp_harness import RtspCamera, rtsp_server_missing, video_to_frames

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ("t_s", "rss_mb", "open_files", "threads", "outbox_rows", "outbox_kb", "wal_kb", "latency_p95_ms", "fps", "camera",
           "catalog_version", "page_ok")


def proc_status(pid: int) -> dict[str, float]:
    """RSS (MB), open files and threads of a live process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]),
            "open_files": len(os.listdir(f"/proc/{pid}/fd"))}


def outbox_figures(path: Path) -> dict[str, float]:
    """Rows waiting in the outbox and its file sizes, read without disturbing the writer (WAL readers do not block it)."""
    rows = 0
    if path.exists():
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT count(*) FROM events").fetchone()[0]
    size = lambda p: p.stat().st_size / 1024 if p.exists() else 0.0  # noqa: E731
    return {"outbox_rows": rows, "outbox_kb": size(path), "wal_kb": size(path.with_name(path.name + "-wal"))}


def build_catalogs(work: Path) -> list[Path]:
    """Two versions of the sample catalog to switch between."""
    versions = []
    for version in (1, 2):
        out = work / "catalogs-built" / f"v{version}"
        if not (out / "catalog.json").exists():
            subprocess.run([sys.executable, "-m", "edge.cli", "catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out",
                            str(out), "--catalog-id", "shelf", "--version", str(version), "--force"], check=True, cwd=REPO,
                           capture_output=True)
        versions.append(out)
    return versions


def wait_for_page(port: int, daemon: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode} while starting: see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2).close()
            return
        except OSError:
            time.sleep(1.0)  # polling a process that is still loading its models
    raise RuntimeError(f"the daemon's page did not answer within {timeout:.0f} s: see {log}")


def growth(samples: list[dict], key: str, warmup_s: float, window_s: float = 120.0) -> tuple[float, float]:
    """Median of `key` just after the warm-up and over the last window."""
    after = [s[key] for s in samples if warmup_s <= s["t_s"] < warmup_s + window_s]
    last = [s[key] for s in samples if s["t_s"] >= samples[-1]["t_s"] - window_s]
    return statistics.median(after or [samples[0][key]]), statistics.median(last)


def plot(samples: list[dict], out: Path, warmup_s: float, events: list[tuple[float, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("rss_mb", "RSS (MB)"), ("open_files", "open files"), ("threads", "threads"), ("outbox_rows", "outbox rows"),
              ("wal_kb", "outbox WAL (KB)"), ("latency_p95_ms", "identification latency p95 (ms)")]
    fig, axes = plt.subplots(3, 2, figsize=(12, 9), sharex=True)
    minutes = [s["t_s"] / 60 for s in samples]
    for ax, (key, title) in zip(axes.flat, panels):
        ax.plot(minutes, [s[key] if s[key] is not None else float("nan") for s in samples], lw=1)
        ax.axvline(warmup_s / 60, color="grey", ls=":", lw=1)
        for t, what in events:
            ax.axvline(t / 60, color="tab:red" if what == "broker" else "tab:green", alpha=0.25, lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("minutes (red: broker restart, green: catalog switch, dotted: end of warm-up)")
    fig.suptitle(f"ShelfID soak: {samples[-1]['t_s'] / 60:.0f} min, looping RTSP camera, MQTT on")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("soak-out"))
    parser.add_argument("--video", type=Path, default=REPO / "samples" / "shelf.mp4", help="looped by the RTSP camera")
    parser.add_argument("--fps", type=int, default=10, help="the camera's frame rate")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--broker-restart-s", type=float, default=300.0, help="restart the broker this often (down 5 s)")
    parser.add_argument("--switch-s", type=float, default=420.0, help="switch the catalog version this often")
    parser.add_argument("--warmup-min", type=float, default=5.0)
    args = parser.parse_args()
    if why := rtsp_server_missing():
        parser.error(why)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    versions = build_catalogs(work)
    DataDir(data).switch_current(versions[0].resolve())
    frames = work / "frames"
    if not (frames / "00000.jpg").exists():
        video_to_frames(args.video, frames)
    camera = RtspCamera(frames, work / "rtsp", fps=args.fps).start()
    broker = Broker(work / "broker").start()
    recorder = Recorder(broker.port, "shelfid/+/stats")
    web_port = free_port()
    config = work / "config.yaml"
    config.write_text(f"device:\n  id: soak\n  data_dir: {data.resolve()}\n  catalog_check_s: 2\n"
                      f"camera:\n  source: {camera.url}\n  name: soak\nmqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n"
                      f"web:\n  enabled: true\n  port: {web_port}\n")
    log = open(args.out / "daemon.log", "w")
    daemon = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)], cwd=REPO, stdout=log, stderr=log)
    wait_for_page(web_port, daemon, args.out / "daemon.log")  # models loaded, warmed up, serving: the clock starts here
    samples: list[dict] = []
    events: list[tuple[float, str]] = []
    page_errors = 0
    started = time.monotonic()
    next_broker, next_switch, switch_to = args.broker_restart_s, args.switch_s, 1
    try:
        with tqdm(total=round(args.minutes * 60), unit="s", desc="soak") as progress:
            while (t := time.monotonic() - started) < args.minutes * 60:
                if daemon.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {daemon.returncode}: see {args.out / 'daemon.log'}")
                if t >= next_broker:
                    broker.stop()
                    time.sleep(5.0)  # the broker is down for 5 s (the scenario)
                    broker.start()
                    events.append((t, "broker"))
                    next_broker += args.broker_restart_s
                if t >= next_switch:
                    DataDir(data).switch_current(versions[switch_to].resolve())
                    events.append((t, "catalog"))
                    switch_to, next_switch = 1 - switch_to, next_switch + args.switch_s
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/status", timeout=5) as answer:
                        page = json.loads(answer.read())
                except (OSError, ValueError):
                    page, page_errors = None, page_errors + 1
                stats = [json.loads(p) for p in recorder.payloads("/stats")[-1:]]
                last = stats[0] if stats else {}
                samples.append({"t_s": round(t, 1), **proc_status(daemon.pid), **outbox_figures(data / "outbox.sqlite"),
                                "latency_p95_ms": (last.get("identify_latency_ms") or {}).get("p95"), "fps": last.get("fps"),
                                "camera": last.get("camera"), "catalog_version": last.get("catalog_version"),
                                "page_ok": page is not None})
                progress.update(round(time.monotonic() - started) - progress.n)
                time.sleep(max(0.0, args.sample_s - (time.monotonic() - started - t)))  # the sampling period
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        recorder.close()
        broker.kill()
        camera.stop()
    with open(args.out / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(samples)
    warmup_s = args.warmup_min * 60
    plot(samples, args.out / "soak.png", warmup_s, events)
    rss0, rss1 = growth(samples, "rss_mb", warmup_s)
    fd0, fd1 = growth(samples, "open_files", warmup_s)
    th0, th1 = growth(samples, "threads", warmup_s)
    latencies = [s["latency_p95_ms"] for s in samples if s["latency_p95_ms"] is not None]
    final = json.loads(recorder.payloads("/stats")[-1]) if recorder.payloads("/stats") else {}
    print(f"soak minutes={samples[-1]['t_s'] / 60:.1f} samples={len(samples)} rss_mb={rss0:.0f}->{rss1:.0f} "
          f"rss_growth_pct={100 * (rss1 - rss0) / rss0:.1f} open_files={fd0:.0f}->{fd1:.0f} threads={th0:.0f}->{th1:.0f} "
          f"outbox_rows_max={max(s['outbox_rows'] for s in samples)} outbox_kb_max={max(s['outbox_kb'] for s in samples):.0f} "
          f"wal_kb_max={max(s['wal_kb'] for s in samples):.0f} "
          f"latency_p95_ms={latencies[0] if latencies else None}->{latencies[-1] if latencies else None} "
          f"broker_restarts={sum(1 for _, e in events if e == 'broker')} "
          f"catalog_switches={final.get('catalog_switches')} frames={final.get('frames')} identified={final.get('identified')} "
          f"page_polls={len(samples)} page_errors={page_errors} daemon_exit={daemon.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
