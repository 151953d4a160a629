"""FER+ relabelling: plurality and strict-majority labels, row alignment with FER2013, vote distributions,
misalignment errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DEFAULT_USAGE

from ferkit.data import load_dataset
from ferkit.data.fer2013 import load_fer2013
from ferkit.data.ferplus import find_ferplus, load_ferplus, majority_labels, read_votes, strict_majority_labels
from ferkit.errors import FerkitError
from ferkit.labels import FERPLUS_EMOTIONS, USAGES
from ferkit.testing.media import make_checkpoint

HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def test_majority_labels_hand_written():
    #                 neu hap sur sad ang dis fea con unk NF
    votes = np.array([[4, 0, 0, 1, 3, 2, 0, 0, 0, 0],    # neutral
                      [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],    # happy
                      [0, 0, 0, 0, 0, 0, 0, 10, 0, 0],   # contempt, the last emotion column
                      [0, 3, 3, 0, 0, 0, 2, 0, 2, 0],    # tie happy/surprise → first column: happy
                      [0, 0, 0, 0, 4, 4, 0, 0, 0, 2],    # tie anger/disgust → anger
                      [1, 0, 0, 0, 0, 0, 0, 0, 6, 3],    # unknown on top → -1
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],   # NF on top → -1
                      [2, 0, 0, 0, 0, 0, 0, 0, 5, 5],    # unknown and NF tie on top → -1
                      [4, 0, 0, 0, 0, 0, 0, 0, 4, 2],    # emotion ties unknown → first column: neutral
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])   # no votes at all → -1
    expected = [0, 1, 7, 1, 4, -1, -1, -1, 0, -1]
    assert majority_labels(votes).tolist() == expected
    assert [FERPLUS_EMOTIONS[i] for i in expected[:5]] == ["neutral", "happy", "contempt", "happy", "angry"]


def test_strict_majority_labels_hand_written():
    """The FER+ authors' test protocol: single votes dropped, then more than half of what is left."""
    #                 neu hap sur sad ang dis fea con unk NF
    votes = np.array([[6, 3, 1, 0, 0, 0, 0, 0, 0, 0],    # 6 of 9 → neutral
                      [5, 1, 1, 1, 1, 1, 0, 0, 0, 0],    # the five single votes go: 5 of 5 → neutral
                      [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],    # a tie is no majority → -1 (plurality says neutral)
                      [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],    # 4 of 9 is not more than half → -1
                      [0, 0, 0, 0, 0, 0, 0, 2, 0, 0],    # 2 of 2 → contempt
                      [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],    # nothing left after the outliers → -1
                      [2, 0, 0, 0, 0, 0, 0, 0, 6, 2],    # unknown holds the majority → -1
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])   # no votes → -1
    assert strict_majority_labels(votes).tolist() == [0, 0, -1, -1, 7, -1, -1, -1]
    assert majority_labels(votes).tolist()[:5] == [0, 0, 0, 0, 7]


# Votes for 16 rows, aligned with conftest's 16 fer_rows and their default usages.
VOTES = [
    [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],   # 0 neutral
    [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # 1 happy
    [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],   # 2 NF → dropped
    [1, 1, 6, 0, 0, 0, 2, 0, 0, 0],   # 3 surprise
    [0, 0, 0, 7, 0, 0, 0, 0, 3, 0],   # 4 sad
    [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],   # 5 unknown → dropped
    [0, 0, 0, 0, 5, 5, 0, 0, 0, 0],   # 6 tie anger/disgust → angry
    [0, 0, 0, 0, 0, 3, 0, 0, 0, 0],   # 7 disgust (only 3 votes: distribution still sums to 1)
    [0, 0, 1, 0, 0, 0, 8, 1, 0, 0],   # 8 fear
    [2, 0, 0, 0, 0, 0, 0, 7, 1, 0],   # 9 contempt
    [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],   # 10 tie neutral/happy → neutral
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # 11 NF → dropped
    [0, 2, 0, 0, 0, 0, 0, 0, 0, 0],   # 12 happy
    [1, 0, 0, 9, 0, 0, 0, 0, 0, 0],   # 13 sad
    [3, 0, 0, 0, 0, 0, 0, 0, 3, 4],   # 14 NF → dropped
    [0, 0, 4, 0, 0, 0, 0, 0, 0, 0],   # 15 surprise
]
LABELS = [0, 1, -1, 2, 3, -1, 4, 5, 6, 7, 0, -1, 1, 3, -1, 2]
STRICT_LABELS = [-1, 1, -1, 2, 3, -1, -1, 5, 6, 7, -1, -1, 1, 3, -1, 2]  # rows 0, 6, 10: no strict majority


def write_ferplus(path, votes=VOTES, usages=None, newline="\n", names=True):
    usages = usages or [DEFAULT_USAGE[i % len(DEFAULT_USAGE)] for i in range(len(votes))]
    lines = [HEADER]
    for i, (row, usage) in enumerate(zip(votes, usages)):
        name = f"fer{i:07d}.png" if names and sum(row[:8]) else ""  # FER+ leaves NF-only rows unnamed
        lines.append(",".join([usage, name, *map(str, row)]))
    data = (newline.join(lines) + newline).encode()
    if str(path).endswith(".gz"):
        import gzip

        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def small_fer2013(tmp_path, fer_rows, write_fer_csv):
    return load_fer2013(write_fer_csv(tmp_path / "fer2013.csv", fer_rows))


def check_ferplus(faces, fer_rows, keep):
    assert faces.label_names == FERPLUS_EMOTIONS and faces.num_classes == 8
    assert faces.labels.tolist() == [LABELS[i] for i in keep]
    np.testing.assert_array_equal(faces.rows, keep)
    np.testing.assert_array_equal(faces.images, np.stack([fer_rows[i][1] for i in keep]))
    np.testing.assert_array_equal(faces.usage, [USAGES.index(DEFAULT_USAGE[i]) for i in keep])
    assert faces.votes.dtype == np.float32 and faces.votes.shape == (len(keep), 8)
    np.testing.assert_allclose(faces.votes.sum(axis=1), 1.0, rtol=1e-6)
    expected = np.array([VOTES[i][:8] for i in keep], np.float64)
    np.testing.assert_allclose(faces.votes, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)
    # the majority label is the arg-max of the distribution
    np.testing.assert_array_equal(faces.votes.argmax(axis=1), faces.labels)


@pytest.mark.parametrize("name,newline", [("fer2013new.csv", "\n"), ("fer2013new.csv.gz", "\r\n")])
def test_load_ferplus_small(tmp_path, fer_rows, small_fer2013, name, newline):
    path = write_ferplus(tmp_path / name, newline=newline)
    faces = load_ferplus(small_fer2013, path)
    keep = [i for i, label in enumerate(LABELS) if label >= 0]
    check_ferplus(faces, fer_rows, keep)
    assert faces.info["ferplus_dropped"] == 4
    assert len(faces) + faces.info["ferplus_dropped"] == len(small_fer2013)
    assert faces.class_counts().tolist() == [2, 2, 2, 2, 1, 1, 1, 1]


def test_load_ferplus_strict_keeps_only_clear_majorities(tmp_path, small_fer2013):
    path = write_ferplus(tmp_path / "fer2013new.csv")
    faces = load_ferplus(small_fer2013, path, test="strict")
    keep = [i for i, label in enumerate(STRICT_LABELS) if label >= 0]
    assert faces.rows.tolist() == keep and faces.labels.tolist() == [STRICT_LABELS[i] for i in keep]
    assert faces.info["ferplus_dropped"] == 7 and faces.info["ferplus_test"] == "strict"
    np.testing.assert_array_equal(faces.votes.argmax(axis=1), faces.labels)
    with pytest.raises(FerkitError, match="protocol"):
        load_ferplus(small_fer2013, path, test="majority")


def test_evaluate_cli_scores_a_ferplus_model_under_either_protocol(tmp_path, fer_rows, write_fer_csv, capsys):
    import json

    import torch

    from ferkit.classifier.checkpoint import Checkpoint, ModelInfo, save_checkpoint
    from ferkit.cli import main
    from ferkit.models import count_parameters, create_model

    csv = write_fer_csv(tmp_path / "fer2013.csv", fer_rows)
    write_ferplus(tmp_path / "fer2013new.csv")
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=8).eval()
    checkpoint = tmp_path / "ferplus.pt"
    info = ModelInfo(arch="simple_cnn", arch_kwargs={"num_classes": 8}, labels=FERPLUS_EMOTIONS,
                     parameters=count_parameters(model))
    save_checkpoint(checkpoint, Checkpoint(info, model.state_dict()))
    counts = {}
    for test in ("plurality", "strict"):
        out = tmp_path / f"{test}.json"
        assert main(["evaluate", "--model", str(checkpoint), "--data", str(csv), "--split", "Training",
                     "--ferplus-test", test, "--json", str(out)]) == 0
        assert f"FER+ {test} labels" in capsys.readouterr().out
        report = json.loads(out.read_text())
        counts[test] = report["count"]
        assert report["ferplus_test"] == test
    # Training is rows 0-9: plurality keeps 8 of them, strict 6 (rows 0 and 6 have no majority)
    assert counts == {"plurality": 8, "strict": 6}
    fer2013_model = make_checkpoint(tmp_path / "fer2013.pt")
    assert main(["evaluate", "--model", str(fer2013_model), "--data", str(csv), "--ferplus-test", "strict"]) == 2
    assert "not a FER+ model" in capsys.readouterr().err


def test_ferplus_aligns_by_row_after_skipped_fer2013_rows(tmp_path, fer_rows, write_fer_csv):
    """A bad FER2013 row skipped with skip_bad_rows must not shift the FER+ labels of the rows after it."""
    bad = {1: "0,1 2 3,Training", 8: "9," + " ".join(["0"] * 2304) + ",Training"}
    fer = load_fer2013(write_fer_csv(tmp_path / "fer2013.csv", fer_rows, lines=bad), skip_bad_rows=True)
    assert fer.info["bad_rows"] == 2
    faces = load_ferplus(fer, write_ferplus(tmp_path / "fer2013new.csv"))
    keep = [i for i, label in enumerate(LABELS) if label >= 0 and i not in bad]
    check_ferplus(faces, fer_rows, keep)
    assert faces.info["ferplus_dropped"] == 4
    assert faces.info["bad_rows"] == 2  # the FER2013 parse info is carried along


def test_ferplus_split_subset_keeps_alignment(tmp_path, fer_rows, small_fer2013):
    public = small_fer2013.split("PublicTest")  # rows 10, 11, 12
    faces = load_ferplus(public, write_ferplus(tmp_path / "fer2013new.csv"))
    assert faces.rows.tolist() == [10, 12] and faces.labels.tolist() == [0, 1]
    assert faces.info["ferplus_dropped"] == 1


def test_usage_mismatch_raises(tmp_path, small_fer2013):
    usages = list(DEFAULT_USAGE)
    usages[5] = "PrivateTest"
    path = write_ferplus(tmp_path / "fer2013new.csv", usages=usages)
    with pytest.raises(FerkitError, match="Usage"):
        load_ferplus(small_fer2013, path)


def test_shifted_ferplus_file_raises(tmp_path, small_fer2013):
    """One missing row at the start shifts every row: the usages disagree at the split boundaries."""
    path = write_ferplus(tmp_path / "fer2013new.csv", votes=VOTES[1:] + [VOTES[0]],
                         usages=list(DEFAULT_USAGE[1:]) + ["PrivateTest"])
    with pytest.raises(FerkitError, match="misaligned"):
        load_ferplus(small_fer2013, path)


def test_ferplus_file_too_short_raises(tmp_path, small_fer2013):
    path = write_ferplus(tmp_path / "fer2013new.csv", votes=VOTES[:10], usages=list(DEFAULT_USAGE[:10]))
    with pytest.raises(FerkitError, match="10 rows"):
        load_ferplus(small_fer2013, path)


def test_malformed_ferplus_rows_name_their_line(tmp_path):
    path = write_ferplus(tmp_path / "fer2013new.csv")
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(",0,", ",x,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerkitError, match=r"\bline 5\b"):
        read_votes(path)
    lines = write_ferplus(tmp_path / "b.csv").read_text().splitlines()
    lines[7] = "Validation," + lines[7].split(",", 1)[1]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FerkitError, match=r"\bline 8\b"):
        read_votes(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("Usage,Image name,neutral,happiness\nTraining,a.png,1,2\n")
    with pytest.raises(FerkitError, match="missing column"):
        read_votes(tmp_path / "c.csv")


def test_read_votes_keeps_empty_image_names(tmp_path):
    votes, usage = read_votes(write_ferplus(tmp_path / "fer2013new.csv"))
    assert votes.shape == (16, 10) and votes.tolist() == VOTES
    assert usage.tolist() == [USAGES.index(u) for u in DEFAULT_USAGE]


def test_load_dataset_finds_ferplus_beside_the_csv(tmp_path, fer_rows, write_fer_csv):
    csv = write_fer_csv(tmp_path / "fer2013.csv.gz", fer_rows)
    with pytest.raises(FerkitError, match="fer2013new"):
        find_ferplus(csv)
    write_ferplus(tmp_path / "fer2013new.csv.gz")
    assert find_ferplus(csv) == tmp_path / "fer2013new.csv.gz"
    faces = load_dataset(csv, labels="ferplus")
    check_ferplus(faces, fer_rows, [i for i, label in enumerate(LABELS) if label >= 0])
    with pytest.raises(FerkitError, match="label set"):
        load_dataset(csv, labels="fer2014")


@pytest.mark.slow
def test_real_ferplus(fer2013_full, ferplus_path):
    faces = load_ferplus(fer2013_full, ferplus_path)
    dropped = faces.info["ferplus_dropped"]
    print(f"FER+: {len(faces)} rows kept, {dropped} dropped (unknown / not a face); "
          f"class counts {dict(zip(FERPLUS_EMOTIONS, faces.class_counts().tolist()))}")
    assert faces.num_classes == 8 and faces.label_names == FERPLUS_EMOTIONS
    assert len(faces) + dropped == len(fer2013_full) == 35887
    # 173 rows are unnamed NF rows (README), and some more have 'unknown' on top; far from most of the data.
    assert 173 <= dropped < 2000
    counts = faces.class_counts()
    assert (counts > 0).all() and counts.sum() == len(faces)
    assert counts.argmax() == FERPLUS_EMOTIONS.index("neutral")  # FER+ is dominated by neutral, then happy
    assert counts.argsort()[-2] == FERPLUS_EMOTIONS.index("happy")
    np.testing.assert_allclose(faces.votes.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(faces.votes.argmax(axis=1), faces.labels)
    # the images are FER2013's own rows, by position
    np.testing.assert_array_equal(faces.images, fer2013_full.images[faces.rows])


def test_fer2013_vote_targets_map_votes_onto_fer2013s_classes(tmp_path, small_fer2013):
    """FER2013 training with FER+ votes as extra soft targets: contempt, unknown and NF votes are dropped, and a
    face with no vote left is marked so that it keeps its own label."""
    from ferkit.data.ferplus import fer2013_vote_targets
    from ferkit.labels import EMOTIONS

    training = small_fer2013.split("Training")  # rows 0-9
    votes, voted = fer2013_vote_targets(training, write_ferplus(tmp_path / "fer2013new.csv"))
    assert votes.dtype == np.float32 and votes.shape == (10, 7)
    #                    angry disgust fear happy sad surprise neutral   (row 0: neu 4, sad 1, ang 3, dis 2)
    np.testing.assert_allclose(votes[0], [0.3, 0.2, 0, 0, 0.1, 0, 0.4], rtol=1e-6)
    np.testing.assert_allclose(votes[9], [0, 0, 0, 0, 0, 0, 1])  # row 9: 7 contempt votes dropped, 2 neutral left
    assert voted.tolist() == [True, True, False, True, True, False, True, True, True, True]  # rows 2 (NF), 5 (unk.)
    for i in np.flatnonzero(voted):
        counts = np.array([VOTES[i][FERPLUS_EMOTIONS.index(name)] for name in EMOTIONS], np.float64)
        np.testing.assert_allclose(votes[i], counts / counts.sum(), rtol=1e-6)
    assert not votes[~voted].any()
    usages = list(DEFAULT_USAGE)
    usages[3] = "PublicTest"
    with pytest.raises(FerkitError, match="misaligned"):
        fer2013_vote_targets(training, write_ferplus(tmp_path / "bad.csv", usages=usages))
    with pytest.raises(FerkitError, match="6 rows"):
        fer2013_vote_targets(training, write_ferplus(tmp_path / "short.csv", votes=VOTES[:6], usages=usages[:6]))


def test_training_blends_fer_plus_votes_into_fer2013_targets(tmp_path, fer_rows, write_fer_csv):
    from ferkit.train.config import TrainConfig
    from ferkit.train.engine import train
    from ferkit.train.objective import soft_targets

    csv = write_fer_csv(tmp_path / "fer2013.csv", fer_rows)
    write_ferplus(tmp_path / "fer2013new.csv")
    config = TrainConfig(model="simple_cnn", data=str(csv), ferplus_votes=0.4, epochs=1, batch_size=4, threads=1,
                         progress=False)
    training = load_dataset(csv).split("Training")
    lines = []
    targets = soft_targets(training, config, lines.append)
    one_hot = np.eye(7, dtype=np.float32)[training.labels]
    from ferkit.data.ferplus import fer2013_vote_targets

    votes, voted = fer2013_vote_targets(training, tmp_path / "fer2013new.csv")
    np.testing.assert_allclose(targets[voted].numpy(), 0.6 * one_hot[voted] + 0.4 * votes[voted], rtol=1e-6)
    np.testing.assert_array_equal(targets[~voted].numpy(), one_hot[~voted])
    np.testing.assert_allclose(targets.sum(dim=1).numpy(), 1.0, rtol=1e-6)
    assert lines == ["FER+ votes blended into 8 of 10 training targets (weight 0.4)"]
    lines.clear()
    train(config, tmp_path / "run", log=lines.append)  # a real run takes it, and its checkpoint records it
    assert "FER+ votes blended into 8 of 10 training targets (weight 0.4)" in lines
    from ferkit.classifier.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "best.pt").info.config["ferplus_votes"] == 0.4


@pytest.mark.parametrize("changes,message", [({"ferplus_votes": 1.5}, "ferplus_votes must be in"),
                                             ({"ferplus_votes": 0.3, "labels": "ferplus"}, "soft_labels")])
def test_bad_ferplus_votes_settings_are_refused(changes, message):
    from ferkit.train.config import TrainConfig

    with pytest.raises(FerkitError, match=message):
        TrainConfig(data="x.csv", **changes).validate()


def test_ferplus_votes_on_a_folder_set_is_refused_in_one_line(tmp_path, fer_rows):
    import cv2

    from ferkit.train.config import TrainConfig
    from ferkit.train.objective import soft_targets

    for i, (label, image) in enumerate(fer_rows[:4]):
        (tmp_path / "faces" / f"c{label}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "faces" / f"c{label}" / f"{i}.png"), image)
    faces = load_dataset(tmp_path / "faces")
    with pytest.raises(FerkitError, match="not a folder set"):
        soft_targets(faces, TrainConfig(data=str(tmp_path / "faces"), ferplus_votes=0.3))
