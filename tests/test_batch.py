"""`ferkit batch` on real Ray: a local run against `ferkit predict` on the same real photos, video and bad file; a
resume that redoes only what was not finished; a two-node cluster on this machine reached through --address; a
recognition worker killed mid-job (SIGKILL) whose work Ray retries, with every row still there exactly once.

One local Ray serves the in-process tests of this module (it takes seconds to start); the command-line tests run
`ferkit batch` in a subprocess, as a user would, on its own local Ray or on the test cluster."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pyarrow.parquet as pq
import pytest

from ferkit.batch import store
from ferkit.batch.job import BatchOptions, recognition_settings, run_batch
from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.testing.media import astronaut, multi_face_frame, no_face_images, one_face_frame, video_frames, write_video

ray = pytest.importorskip("ray", reason="ferkit batch needs ray[data]: make setup installs it")

MODEL = "fast"  # the shipped models run the same code; the small one keeps the tests short
SETTINGS = recognition_settings(MODEL)


def ferkit_batch(*args, timeout=240, env=None):
    """`ferkit batch` as a user runs it; returns the finished process."""
    return subprocess.run([sys.executable, "-m", "ferkit.cli", "batch", *map(str, args), "--model", MODEL,
                           "--no-progress"], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Real photos (one face, four faces, none), a corrupt file, a text file and a real video, in sub-folders."""
    folder = tmp_path_factory.mktemp("archive")
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "astronaut.jpg"), astronaut())
    cv2.imwrite(str(folder / "sub" / "four.png"), multi_face_frame()[0])
    cv2.imwrite(str(folder / "sub" / "cup.jpg"), no_face_images()[0])
    cv2.imwrite(str(folder / "sub" / "bricks.png"), no_face_images()[1])
    cv2.imwrite(str(folder / "mirrored.jpg"), astronaut()[:, ::-1])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    write_video(folder / "clip.mp4", video_frames())
    return folder


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, on loopback, as `ferkit batch` starts its own."""
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def predicted(archive, tmp_path_factory) -> list[dict]:
    """`ferkit predict --json` on the same folder: the reference."""
    out = tmp_path_factory.mktemp("predict")
    main(["predict", str(archive), "--model", MODEL, "--json", str(out / "faces.json"), "--video-dir",
          str(out / "videos"), "--no-progress", "--quiet"])
    return json.loads((out / "faces.json").read_text())


@pytest.fixture(scope="module")
def batched(archive, local_ray, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    summary = run_batch(BatchOptions([str(archive)], out, SETTINGS, batch_size=2, progress=False))
    return out, summary


def face_rows(out: Path) -> list[dict]:
    table = store.read_table(out / "faces")
    return table.to_pylist() if table is not None else []


def input_rows(out: Path) -> list[dict]:
    return store.read_table(out / "inputs").to_pylist()


def face_key(row: dict) -> tuple:
    return row["source"], row["frame"] if row["frame"] is not None else -1, tuple(row["box"] if "box" in row else
                                                                              (row["x"], row["y"], row["w"], row["h"]))


def test_batch_gives_the_faces_of_predict(batched, predicted):
    out, summary = batched
    faces = {face_key(r): r for r in face_rows(out)}
    expected = {face_key(r): r for r in predicted}
    assert len(faces) == len(face_rows(out)), "a face was written twice"
    assert faces.keys() == expected.keys() and len(faces) == summary["faces"] == 22
    for key, want in expected.items():
        got = faces[key]
        assert got["emotion"] == want["emotion"] and got.get("track") == want.get("track")
        assert got["model"] == MODEL and got["precision"] in ("fp32", "int8")
        for label in EMOTIONS:
            assert got[label] == pytest.approx(want["probabilities"][label], abs=1e-5), (key, label)
        if want.get("time_s") is not None:
            assert got["time_s"] == pytest.approx(want["time_s"])


def test_batch_records_every_input_once_and_bad_ones_as_errors(batched, archive):
    out, summary = batched
    rows = {Path(r["source"]).relative_to(archive).as_posix(): r for r in input_rows(out)}
    assert len(rows) == len(input_rows(out)) == summary["inputs"] == 7  # notes.txt is not an input
    assert rows["broken.jpg"]["status"] == "error" and "not an image" in rows["broken.jpg"]["error"]
    assert {k for k, r in rows.items() if r["status"] == "ok"} == {
        "astronaut.jpg", "mirrored.jpg", "sub/four.png", "sub/cup.jpg", "sub/bricks.png", "clip.mp4"}
    assert (rows["sub/four.png"]["faces"], rows["sub/cup.jpg"]["faces"], rows["clip.mp4"]["frames"]) == (4, 0, 12)
    assert rows["clip.mp4"]["kind"] == "video" and rows["clip.mp4"]["duration_s"] == pytest.approx(1.2)
    tracks = store.read_table(out / "tracks").to_pylist()
    assert sorted(t["track"] for t in tracks) == [1, 2, 3, 4, 5] and {t["frames"] for t in tracks} == {8, 2}
    first = next(t for t in tracks if t["track"] == 1)
    assert sum(first[f"share_{label}"] for label in EMOTIONS) == pytest.approx(1.0, abs=1e-6)
    assert first[f"share_{first['emotion']}"] >= 0.5


def test_a_rerun_resumes_and_redoes_only_what_was_not_finished(batched, archive, tmp_path):
    out, _ = batched
    copy = tmp_path / "out"
    subprocess.run(["cp", "-rp", str(out), str(copy)], check=True)
    before = face_rows(copy)
    parts = sorted((copy / "inputs").glob("part-*.parquet"))
    video_part = next(p for p in parts if "video" in pq.read_table(p).column("kind").to_pylist())
    video_part.unlink()  # as if the job stopped between the video's faces (left behind) and its inputs row
    (copy / "faces" / ".part-x.parquet.tmp").write_bytes(b"half a write")
    kept = {p: p.stat().st_mtime_ns for p in parts if p != video_part}
    summary = run_batch(BatchOptions([str(archive)], copy, SETTINGS, batch_size=2, progress=False))
    after = face_rows(copy)
    assert sorted(map(face_key, after)) == sorted(map(face_key, before)) and summary["faces"] == len(before) == 22
    assert len(input_rows(copy)) == 7 and video_part.exists() and not list((copy / "faces").glob(".part-*"))
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "an input already done was done again"


def test_a_finished_job_runs_nothing_again(batched, archive, capsys):
    out, _ = batched
    started = time.perf_counter()
    summary = run_batch(BatchOptions([str(archive)], out, SETTINGS, batch_size=2, progress=False))
    assert summary["inputs"] == 7 and "already done" in capsys.readouterr().err
    assert time.perf_counter() - started < 20  # the models load to check the settings; no Ray work


def test_other_settings_on_the_same_out_are_refused(batched, archive):
    out, _ = batched
    with pytest.raises(FerkitError, match="other settings.*threshold"):
        run_batch(BatchOptions([str(archive)], out, recognition_settings(MODEL, threshold=0.9), progress=False))


def test_bad_command_lines_are_one_line(tmp_path, archive):
    (tmp_path / "file").write_text("x")
    for args, message in (([archive, "--out", tmp_path / "file"], "not a folder"),
                          ([tmp_path / "nothing-here", "--out", tmp_path / "o"], "no such file or folder"),
                          ([archive, "--out", tmp_path / "o", "--address", "127.0.0.1:1"], "cannot reach")):
        done = ferkit_batch(*args, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr


def free_port_between(low: int, high: int) -> int:
    for port in random.Random().sample(range(low, high), 50):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free port between {low} and {high}")


def two_node_cluster():
    from ray.cluster_utils import Cluster

    port = free_port_between(20000, 30000)  # outside Ray's worker range (10002-19999), its defaults and the
    # ephemeral ports (32768-60999) that other processes may take meanwhile
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                             "gcs_server_port": port,
                                                             "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    return cluster, f"127.0.0.1:{port}"


def test_a_two_node_cluster_shares_the_work_and_gives_the_same_faces(archive, batched, tmp_path):
    cluster, address = two_node_cluster()
    try:
        done = ferkit_batch(archive, "--out", tmp_path / "out", "--address", address, "--workers", "2",
                            "--batch-size", "1")
    finally:
        cluster.shutdown()
    assert done.returncode == 1 and "1 error(s)" in done.stdout, done.stderr  # broken.jpg
    rows = input_rows(tmp_path / "out")
    nodes = {r["worker"].split("/")[1] for r in rows}
    assert len(rows) == 7 and len(nodes) == 2, rows
    local = {face_key(r): r["happy"] for r in face_rows(batched[0])}
    remote = {face_key(r): r["happy"] for r in face_rows(tmp_path / "out")}
    assert remote.keys() == local.keys() and all(remote[k] == pytest.approx(local[k], abs=1e-5) for k in local)


def descendants(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def recognition_workers(pid: int) -> list[int]:
    found = []
    for child in descendants(pid):
        try:
            if b"RecognizeUnit" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


def test_a_killed_worker_is_retried_and_nothing_is_lost_or_doubled(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for n in range(3):
        write_video(videos / f"v{n}.mp4", [one_face_frame(dx=2 * i) for i in range(40)])
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "ferkit.cli", "batch", str(videos), "--out", str(out),
                                "--model", MODEL, "--workers", "1", "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.time() + 180
        while time.time() < deadline and process.poll() is None:
            if list((out / "inputs").glob("part-*.parquet")):  # one video done: the worker is on the next
                workers = recognition_workers(process.pid)
                if workers:
                    killed = workers[0]
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None, "the job finished before a worker could be killed"
    assert process.returncode == 0, stderr
    inputs = input_rows(out)
    assert sorted(Path(r["source"]).name for r in inputs) == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert all(r["status"] == "ok" and r["frames"] == r["faces"] == 40 for r in inputs), inputs
    keys = [(r["source"], r["frame"], r["face"]) for r in face_rows(out)]
    assert len(keys) == len(set(keys)) == 120
    pids = {r["worker"].rsplit("/", 1)[1] for r in inputs}
    assert str(killed) in pids and len(pids) == 2, "the worker Ray started again did not do the rest"
