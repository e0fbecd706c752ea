#!/usr/bin/python3
"""A network camera on loopback: a folder of JPEG frames streamed over RTSP as H.264, looping forever.

Runs under the system Python with Debian's GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-good and -ugly for x264enc; `make test` installs them). Prints one line
`ready rtsp://127.0.0.1:PORT/PATH` once it listens. tools/rtsp_harness.py starts, stops and freezes it.

    /usr/bin/python3 -m tools.rtsp_server --frames DIR --port 8554
"""

import argparse
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402  (the versions must be required first)


def launch_line(frames: Path, fps: int) -> str:
    """One shared pipeline: frames decoded, paced at `fps`, encoded with a keyframe every second (late joiners start fast)."""
    return (f"( multifilesrc location={frames}/%05d.jpg loop=true caps=image/jpeg,framerate={fps}/1 ! jpegdec ! "
            f"videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
            f"threads=1 ! rtph264pay name=pay0 pt=96 config-interval=1 )")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, required=True, help="folder of 00000.jpg, 00001.jpg, … (same size)")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/shelf", help="mount point of the stream")
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()
    if not (args.frames / "00000.jpg").is_file():
        parser.error(f"{args.frames}: no 00000.jpg (frames are numbered from 0, five digits)")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.frames.resolve(), args.fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
