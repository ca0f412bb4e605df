"""Recordings that survive real stops: SIGINT, SIGTERM and SIGHUP close a bag cleanly, also in
a recorder started in the background (SIGINT ignored, as ``&`` in a script leaves it), and
after SIGKILL (or a cut file) ``fdl-robot-bag reindex`` recovers every complete message.

Each recorder is a real ``fdl-robot-bag record`` process; the bags are read back with
``fdl-robot-bag info`` and with rosbags' AnyReader, and counted against what was published.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.duration import Duration  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from fdl_robot.bags import cli  # noqa: E402
from fdl_robot.bags.cdr import serialize  # noqa: E402
from fdl_robot.bags.recorder import FLUSH_PERIOD_S, open_writer  # noqa: E402
from fdl_robot.bags.recovery import MAGIC, reindex, scan_records  # noqa: E402
from fdl_robot.bags.typestore import typestore  # noqa: E402

pytestmark = pytest.mark.ros

N = 40                                          # messages published per recording


def _dispositions(background: bool, nohup: bool):
    """What the shell gives a job: ``&`` in a non-interactive shell ignores SIGINT and SIGQUIT;
    ``nohup`` ignores SIGHUP. Set explicitly, whatever pytest itself inherited."""
    def apply():
        ignored = {signal.SIGINT: background, signal.SIGQUIT: background, signal.SIGHUP: nohup}
        for sig, ignore in ignored.items():
            signal.signal(sig, signal.SIG_IGN if ignore else signal.SIG_DFL)
    return apply


def start_recorder(out: Path, topic: str, background: bool = False, nohup: bool = False):
    return subprocess.Popen([sys.executable, "-m", "fdl_robot.bags.cli", "record", "-o", str(out), topic],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_dispositions(background, nohup))


def wait_for_recorder(ros, pub) -> None:
    ros.wait_for_subscribers(pub, 1, timeout_s=30)


def publish(ros, pub, first: int, n: int) -> None:
    """``n`` headers numbered from ``first``, all acknowledged by the recorder's reader (the
    acknowledgement often waits for Fast DDS' next heartbeat: up to 3 s)."""
    for k in range(first, first + n):
        pub.publish(Header(frame_id=str(k)))
    assert pub.wait_for_all_acked(Duration(seconds=10))


def frame_ids_by_anyreader(bag: Path) -> list[str]:
    with AnyReader([bag]) as reader:
        return [reader.deserialize(raw, c.msgtype).frame_id for c, _t, raw in reader.messages()]


def info(bag: Path, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main(["info", str(bag)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_the_background_setup_is_what_a_shell_gives_a_job():
    """The dispositions the tests start recorders with, seen from a Python child."""
    probe = "import signal as s; print(s.getsignal(s.SIGINT) == s.SIG_IGN, s.getsignal(s.SIGHUP) == s.SIG_IGN)"
    for background, nohup, expected in ((True, False, "True False"), (False, False, "False False"),
                                        (True, True, "True True")):
        got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             preexec_fn=_dispositions(background, nohup), timeout=60).stdout.split()
        assert " ".join(got[-2:]) == expected
    # ...and what a non-interactive bash really does with `&`
    bash = shutil.which("bash")
    if bash:
        got = subprocess.run([bash, "-c", f"{sys.executable} -c '{probe}' & wait"], capture_output=True,
                             text=True, timeout=60, preexec_fn=_dispositions(False, False)).stdout.split()
        assert got[-2] == "True"


@pytest.mark.parametrize("sig, background", [
    (signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGHUP, False),
    (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["INT", "TERM", "HUP", "INT-background", "TERM-background"])
def test_a_stop_signal_closes_the_bag_with_every_message(tmp_path, capsys, sig, background):
    bag = tmp_path / "run"
    with RosHarness() as ros:
        pub = ros.publisher(Header, "chatter", 100)
        recorder = start_recorder(bag, f"{ros.namespace}/chatter", background=background)
        try:
            wait_for_recorder(ros, pub)
            publish(ros, pub, 0, N)
            recorder.send_signal(sig)                  # at once: queued messages must be taken
            out, _ = recorder.communicate(timeout=30)
        finally:
            recorder.kill()
    assert recorder.returncode == 0, out
    assert f"wrote {N} messages on 1 topics" in out and f"stopped by {sig.name}" in out
    assert (bag / "metadata.yaml").is_file()
    assert (bag / "run.mcap").read_bytes()[-len(MAGIC):] == MAGIC        # footer + magic
    assert scan_records(bag / "run.mcap").footer
    rc, text, err = info(bag, capsys)
    assert rc == 0 and f"Messages:          {N}" in text, err
    assert frame_ids_by_anyreader(bag) == [str(k) for k in range(N)]


def test_nohup_keeps_recording_through_sighup_and_sigterm_closes_it(tmp_path):
    bag = tmp_path / "run"
    with RosHarness() as ros:
        pub = ros.publisher(Header, "chatter", 100)
        recorder = start_recorder(bag, f"{ros.namespace}/chatter", background=True, nohup=True)
        try:
            wait_for_recorder(ros, pub)
            publish(ros, pub, 0, N // 2)
            recorder.send_signal(signal.SIGHUP)        # the terminal went away: nohup asked to go on
            time.sleep(0.5)
            assert recorder.poll() is None
            publish(ros, pub, N // 2, N // 2)
            recorder.send_signal(signal.SIGTERM)
            out, _ = recorder.communicate(timeout=30)
        finally:
            recorder.kill()
    assert recorder.returncode == 0 and f"wrote {N} messages" in out, out
    assert frame_ids_by_anyreader(bag) == [str(k) for k in range(N)]


def test_after_sigkill_reindex_recovers_every_message_received(tmp_path, capsys):
    bag = tmp_path / "run"
    with RosHarness() as ros:
        pub = ros.publisher(Header, "chatter", 100)
        recorder = start_recorder(bag, f"{ros.namespace}/chatter")
        try:
            wait_for_recorder(ros, pub)
            publish(ros, pub, 0, N)
            time.sleep(FLUSH_PERIOD_S + 0.5)           # the recorder writes what it holds
            recorder.send_signal(signal.SIGKILL)
            recorder.communicate(timeout=30)
        finally:
            recorder.kill()
    assert recorder.returncode == -signal.SIGKILL
    assert not (bag / "metadata.yaml").exists()
    assert not scan_records(bag / "run.mcap").footer
    # info and play refuse in one line, and say what to do
    rc, _, err = info(bag, capsys)
    assert rc == 1 and err.count("\n") == 1 and f"fdl-robot-bag reindex {bag}" in err, err
    assert cli.main(["play", str(bag)]) == 1
    assert f"fdl-robot-bag reindex {bag}" in capsys.readouterr().err

    assert cli.main(["reindex", str(bag)]) == 0
    out = capsys.readouterr().out
    assert f"recovered {N} messages on 1 topics" in out, out
    assert (bag / "run.mcap.orig").is_file() and (bag / "metadata.yaml").is_file()
    rc, text, err = info(bag, capsys)
    assert rc == 0 and f"Messages:          {N}" in text, err
    assert frame_ids_by_anyreader(bag) == [str(k) for k in range(N)]
    # a second reindex finds nothing to do
    assert cli.main(["reindex", str(bag)]) == 0 and "nothing to do" in capsys.readouterr().out


def write_chunked_bag(path: Path, n_chunks: int = 6):
    """A bag of several chunks (images and headers), closed: what a long recording writes."""
    store = typestore()
    writer = open_writer(path)
    conns = {"img": writer.add_connection("/img", "sensor_msgs/msg/Image", typestore=store),
             "hdr": writer.add_connection("/hdr", "std_msgs/msg/Header", typestore=store)}
    rng = np.random.default_rng(3)
    sent, t = [], 1_000_000_000
    for c in range(n_chunks):
        for k in range(5):
            t += 10_000_000
            img = Image(height=16, width=16, encoding="mono8", step=16,
                        data=rng.integers(0, 256, 256, dtype=np.uint8).tobytes())
            hdr = Header(frame_id=f"{c}.{k}")
            for key, msg in (("img", img), ("hdr", hdr)):
                data = serialize(msg, store)
                writer.write(conns[key], t, data)
                sent.append((f"/{key}", t, data))
        writer.storage.close_chunk()                  # a chunk per round, as flush() does
    writer.close()
    return sent


def read_raw(bag: Path):
    with AnyReader([bag]) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def test_reindex_recovers_every_complete_chunk_of_a_cut_file(tmp_path, capsys):
    """Cut anywhere (a kill or power loss mid-write): the complete chunks come back, byte for
    byte; the cut record is dropped and reported."""
    full = tmp_path / "full"
    sent = write_chunked_bag(full)
    mcap = (full / "full.mcap").read_bytes()
    records = scan_records(full / "full.mcap").records
    chunks = [r for r in records if r.opcode == 0x06]
    assert len(chunks) == 6
    per_chunk = len(sent) // len(chunks)
    rng = np.random.default_rng(0)
    cuts = [0, 5, chunks[0].offset + 3, chunks[2].end, chunks[3].end + 5]  # in the magic, a chunk...
    cuts += sorted(int(c) for c in rng.integers(chunks[0].offset, chunks[-1].end, 4))
    for i, cut in enumerate(cuts):
        bag = tmp_path / f"cut{i}"
        bag.mkdir()
        (bag / f"cut{i}.mcap").write_bytes(mcap[:cut])
        complete = sum(c.end <= cut for c in chunks)
        result = reindex(bag, keep_original=False)
        assert result.message_count == complete * per_chunk, (cut, result)
        assert read_raw(bag) == sent[:complete * per_chunk]
        assert result.dropped_bytes == cut - max([r.end for r in records if r.end <= cut] or [0])
        if result.dropped_bytes or cut < len(MAGIC):
            assert "cut off" in result.stop_reason or "nothing was written" in result.stop_reason
        assert not list(bag.glob(".reindex-*")) and not (bag / f"cut{i}.mcap.orig").exists()
    # zeros where a power loss left blocks unwritten: the scan stops there, the rest is kept
    bag = tmp_path / "zeros"
    bag.mkdir()
    (bag / "zeros.mcap").write_bytes(mcap[:chunks[4].end] + bytes(4096))
    result = reindex(bag)
    assert result.message_count == 5 * per_chunk and "opcode 0x00" in result.stop_reason
    assert result.dropped_bytes == 4096
    # not an mcap at all: one line, no traceback
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.mcap").write_bytes(b"not a bag")
    assert cli.main(["reindex", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an mcap file" in err


def test_reindex_keeps_definitions_qos_and_custom_data(tmp_path):
    """The rebuilt metadata matches what a clean close writes (types, hashes, QoS, counts)."""
    import yaml

    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    inf = QosTime(9223372036, 854775807)
    qos = Qos(QosHistory.UNKNOWN, 0, QosReliability.BEST_EFFORT, QosDurability.VOLATILE, inf, inf,
              QosLiveliness.AUTOMATIC, inf, False)
    bag = tmp_path / "clean"
    store = typestore()
    writer = open_writer(bag, custom_data={"seed": "7"})
    conn = writer.add_connection("/objects", "fdl_robot_interfaces/msg/Object3DArray", typestore=store,
                                 offered_qos_profiles=[qos])
    from fdl_robot_interfaces.msg import Object3D, Object3DArray

    msgs = [Object3DArray(objects=[Object3D(class_name="cube", score=0.5 + 0.1 * k)]) for k in range(3)]
    for k, m in enumerate(msgs):
        writer.write(conn, 10 + k, serialize(m, store))
    writer.close()
    clean = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    reindex(bag, force=True)
    again = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert again["topics_with_message_count"] == clean["topics_with_message_count"]
    assert again["message_count"] == 3 and again["custom_data"]["seed"] == "7"
    assert again["custom_data"]["reindexed_by"] == "fdl-robot-bag reindex"
    got = [deserialize_message(raw, Object3DArray) for _t, _s, raw in read_raw(bag)]
    assert [o.objects[0].class_name for o in got] == ["cube"] * 3
    assert [round(o.objects[0].score, 3) for o in got] == [0.5, 0.6, 0.7]


def test_reindex_refuses_what_it_cannot_handle(tmp_path):
    with pytest.raises(FileNotFoundError):
        reindex(tmp_path / "missing")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.mcap", "b.mcap"):
        (two / name).write_bytes(MAGIC)
    with pytest.raises(ValueError, match="one .mcap file, found a.mcap, b.mcap"):
        reindex(two)
    assert sorted(os.listdir(two)) == ["a.mcap", "b.mcap"]          # nothing written
