"""The data pipeline: demo set, transforms, data sets, label mixing, sharding and readable data errors."""

import io
import multiprocessing
import os
import re
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import IMAGE_FOLDER_CLASSES, truncated_jpeg, write_image_folder
from PIL import Image

from src.config import Config
from src.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    DEMO_CLASSES,
    create_dataset,
    data_folder,
    dataset_num_classes,
    explain_pipeline_error,
    generate_demo_split,
    iterate_checked,
    preprocess_image,
    reported_image_errors,
    write_demo_imagefolder,
)
from src.data.datasets import parallel_workers
from src.data.folders import image_files
from src.data.jpeg_guard import jpeg_header_problem
from src.data.mix import BatchMix
from src.data.transforms import random_erasing_ops, train_transforms
from src.errors import UserError

CLASSES = IMAGE_FOLDER_CLASSES
TRAIN_PER_CLASS = 8
VAL_PER_CLASS = 4
EPS = 0.1


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> str:
    return write_image_folder(tmp_path_factory.mktemp("imagenet"))


def folder_config(root: str, **changes) -> Config:
    base = Config(set="ImageNet", data_url=root, num_classes=len(CLASSES), image_size=32, batch_size=8,
                  num_parallel_workers=2, label_smoothing=EPS)
    return replace(base, **changes)


def all_batches(cfg: Config, split: str, training: bool, **kwargs) -> list[tuple[np.ndarray, np.ndarray]]:
    dataset = create_dataset(cfg, split, training, **kwargs)
    return [(images, labels) for images, labels in iterate_checked(dataset, data_folder(cfg, split))]


# ----- demo set -----

def test_demo_generation_is_deterministic_and_train_differs_from_val():
    images, labels = generate_demo_split("train", num_per_class=20, seed=3)
    again, again_labels = generate_demo_split("train", num_per_class=20, seed=3)
    val, _ = generate_demo_split("val", num_per_class=20, seed=3)
    assert images.shape == (20 * len(DEMO_CLASSES), 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and np.bincount(labels).tolist() == [20] * len(DEMO_CLASSES)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(images, val)


def spectrum_features(images: np.ndarray) -> np.ndarray:
    """Normalised Fourier magnitudes of the grey image: blind to colour and position."""
    gray = images.astype(np.float32).mean(axis=-1)
    gray -= gray.mean(axis=(1, 2), keepdims=True)
    magnitude = np.abs(np.fft.fft2(gray)).reshape(len(images), -1)
    return magnitude / np.linalg.norm(magnitude, axis=1, keepdims=True)


def test_demo_classes_are_told_apart_by_shape_alone():
    # Colours and positions are random, so only shape/texture can separate the classes: a nearest-centroid
    # classifier on colour- and position-blind features must beat chance (1/8) by far on every class.
    train_images, train_labels = generate_demo_split("train", num_per_class=100)
    val_images, val_labels = generate_demo_split("val", num_per_class=50)
    train_features, val_features = spectrum_features(train_images), spectrum_features(val_images)
    centroids = np.stack([train_features[train_labels == c].mean(axis=0) for c in range(len(DEMO_CLASSES))])
    predicted = np.argmax(val_features @ centroids.T, axis=1)
    recall = [np.mean(predicted[val_labels == c] == c) for c in range(len(DEMO_CLASSES))]
    assert np.mean(predicted == val_labels) > 0.7
    assert min(recall) > 0.5


def test_demo_set_is_written_on_first_use_and_read_back_exactly(tmp_path):
    root = str(tmp_path / "demo")
    cfg = Config(set="demo", data_url=root, num_classes=len(DEMO_CLASSES), image_size=32, batch_size=64,
                 num_parallel_workers=2)
    batches = all_batches(cfg, "val", training=False)
    assert sorted(os.listdir(os.path.join(root, "train"))) == list(DEMO_CLASSES)
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    expected_images, expected_labels = generate_demo_split("val")
    mean, std = 255 * np.array(CIFAR_MEAN), 255 * np.array(CIFAR_STD)
    stored = images.transpose(0, 2, 3, 1) * std + mean
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(stored, expected_images, atol=1e-3)


def test_write_demo_imagefolder_leaves_an_existing_split_alone(tmp_path):
    write_demo_imagefolder(str(tmp_path), num_train_per_class=2, num_val_per_class=1)
    marker = tmp_path / "train" / DEMO_CLASSES[0] / "00000.png"
    before = marker.stat().st_mtime_ns
    write_demo_imagefolder(str(tmp_path), num_train_per_class=5, num_val_per_class=5)
    assert marker.stat().st_mtime_ns == before
    assert len(list(image_files(str(tmp_path / "train")))) == 2 * len(DEMO_CLASSES)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


# ----- training batches and labels -----

def test_train_batches_are_nchw_float32_with_one_hot_rows_summing_to_one(image_folder):
    cfg = folder_config(image_folder, mix_up=0.8, cutmix=1.0, auto_augment="rand-m9-mstd0.5-inc1",
                        re_prob=0.5)
    batches = all_batches(cfg, "train", training=True)
    assert len(batches) == len(CLASSES) * TRAIN_PER_CLASS // cfg.batch_size
    for images, labels in batches:
        assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32
        assert labels.shape == (8, len(CLASSES)) and labels.dtype == np.float32
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)


def test_label_smoothing_alone_gives_one_minus_eps_plus_eps_over_c_to_the_true_class(image_folder):
    labels = np.concatenate([labels for _, labels in all_batches(folder_config(image_folder), "train", True)])
    classes = len(CLASSES)
    np.testing.assert_allclose(labels.max(axis=1), 1 - EPS + EPS / classes, rtol=1e-6)
    np.testing.assert_allclose(labels.min(axis=1), EPS / classes, rtol=1e-6)
    assert np.bincount(labels.argmax(axis=1), minlength=classes).tolist() == [TRAIN_PER_CLASS] * classes


def test_mixup_and_cutmix_mix_the_labels_of_two_images(image_folder):
    off_value = EPS / len(CLASSES)
    for changes in ({"mix_up": 0.8}, {"cutmix": 1.0}):
        cfg = folder_config(image_folder, mixup_prob=1.0, **changes)
        labels = np.concatenate([labels for _, labels in all_batches(cfg, "train", training=True)])
        raised = (labels > off_value + 1e-4).sum(axis=1)
        assert (raised == 2).any(), changes


class Recorder:
    def __init__(self, name: str, calls: list[str]):
        self.name, self.calls = name, calls

    def __call__(self, images, labels):
        self.calls.append(self.name)
        return images, labels


def test_batch_mix_applies_with_mixup_prob_and_picks_cutmix_with_switch_prob():
    calls: list[str] = []
    mix = BatchMix(Recorder("mixup", calls), Recorder("cutmix", calls), prob=0.6, switch_prob=0.25, seed=0)
    batches = 4000
    for _ in range(batches):
        mix(np.zeros(1), np.zeros(1))
    assert abs(len(calls) / batches - 0.6) < 0.03
    assert abs(calls.count("cutmix") / len(calls) - 0.25) < 0.03


def test_batch_mix_with_only_cutmix_always_uses_cutmix():
    calls: list[str] = []
    mix = BatchMix(None, Recorder("cutmix", calls), prob=1.0, switch_prob=0.0, seed=0)
    for _ in range(50):
        mix(np.zeros(1), np.zeros(1))
    assert calls == ["cutmix"] * 50


# ----- evaluation, single-image preprocessing, sharding -----

def test_eval_batches_have_int32_labels_and_repeat_exactly(image_folder):
    cfg = folder_config(image_folder)
    first, second = all_batches(cfg, "val", training=False), all_batches(cfg, "val", training=False)
    labels = np.concatenate([labels for _, labels in first])
    assert labels.dtype == np.int32
    assert labels.tolist() == sorted(labels.tolist()) == [c for c in range(len(CLASSES)) for _ in range(4)]
    assert first[0][0].shape == (8, 3, 32, 32) and len(first[-1][0]) == 4  # no dropped remainder
    for (images_a, _), (images_b, _) in zip(first, second, strict=True):
        np.testing.assert_array_equal(images_a, images_b)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_preprocess_image_equals_the_eval_pipeline(tmp_path, suffix):
    root = write_image_folder(tmp_path, train_per_class=1, val_per_class=3, suffix=suffix)
    cfg = folder_config(root, image_size=40, crop_pct=0.875)
    images = np.concatenate([images for images, _ in all_batches(cfg, "val", training=False)])
    paths = list(image_files(data_folder(cfg, "val")))
    assert images.shape == (len(paths), 3, 40, 40)
    for image, path in zip(images, paths, strict=True):
        np.testing.assert_allclose(preprocess_image(path, cfg), image, rtol=0, atol=1e-6)
    if suffix == ".png":  # lossless: the in-memory forms must give the same tensor as the file
        with Image.open(paths[0]) as pil_image:
            np.testing.assert_allclose(preprocess_image(pil_image, cfg), images[0], rtol=0, atol=1e-6)
            np.testing.assert_allclose(preprocess_image(np.asarray(pil_image), cfg), images[0], rtol=0,
                                       atol=1e-6)


def test_val_with_fewer_classes_keeps_the_training_indices(tmp_path):
    root = write_image_folder(tmp_path, train_per_class=1, val_per_class=2)
    shutil.rmtree(tmp_path / "val" / CLASSES[0])
    labels = np.concatenate([labels for _, labels in all_batches(folder_config(root), "val", training=False)])
    assert labels.tolist() == [1, 1, 2, 2]


def test_iterate_checked_runs_one_epoch_per_loop(image_folder):
    cfg = folder_config(image_folder)
    dataset = create_dataset(cfg, "val", training=False)
    batches = iterate_checked(dataset, data_folder(cfg, "val"), num_epochs=2)
    assert [sum(len(labels) for _, labels in batches) for _ in range(2)] == [len(CLASSES) * VAL_PER_CLASS] * 2


def test_sharding_by_rank_gives_disjoint_halves_that_cover_the_data(image_folder):
    cfg = folder_config(image_folder)

    def keyed(batches):
        return {(int(label), image.tobytes())
                for images, labels in batches for image, label in zip(images, labels, strict=True)}

    everything = keyed(all_batches(cfg, "val", training=False))
    halves = [keyed(all_batches(cfg, "val", training=False, rank_id=rank, rank_size=2)) for rank in (0, 1)]
    assert len(everything) == len(CLASSES) * VAL_PER_CLASS
    assert len(halves[0]) == len(halves[1]) == len(everything) // 2
    assert not halves[0] & halves[1]
    assert halves[0] | halves[1] == everything


# ----- augmentation operators -----

def apply_eagerly(ops: list, image: np.ndarray) -> np.ndarray:
    # One by one: an eager Compose that ends in a Python operator returns a 1-tuple instead of the array.
    for op in ops:
        image = op(image)
    return image


def test_random_erasing_const_zeroes_a_box_in_every_image(image_folder):
    # Normalised pixels of integer images are never exactly 0.0; the const fill is.
    for re_prob, expect_erased in ((0.0, False), (1.0, True)):
        cfg = folder_config(image_folder, re_prob=re_prob, re_mode="const", re_count=3)
        for images, _ in all_batches(cfg, "train", training=True):
            erased = (images == 0).all(axis=1).reshape(len(images), -1).any(axis=1)
            assert erased.all() if expect_erased else not erased.any()


def test_random_erasing_rand_fills_per_channel_and_pixel_fills_per_pixel():
    image = np.full((3, 64, 64), 7.0, dtype=np.float32)
    for mode in ("rand", "pixel"):
        erase = random_erasing_ops(Config(re_prob=1.0, re_mode=mode, re_count=1))
        values = apply_eagerly(erase, image.copy())
        assert (values != image).any()
        per_channel = [np.unique(values[c][values[c] != 7.0]) for c in range(3)]
        if mode == "rand":
            assert all(len(v) == 1 for v in per_channel) and len({float(v[0]) for v in per_channel}) == 3
        else:
            assert all(len(v) > 10 for v in per_channel)


@pytest.mark.parametrize("data_set, spec", [("ImageNet", "autoaug"), ("ImageNet", "rand-m9-n3"),
                                            ("demo", "autoaug"), ("demo", "rand-m7-mstd0.5-inc1")])
def test_auto_augment_specs_build_and_run_in_the_train_transforms(tmp_path, data_set, spec):
    cfg = Config(set=data_set, image_size=32, auto_augment=spec)
    image = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    out = apply_eagerly(train_transforms(cfg), image)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32


# ----- CIFAR-100 binary -----

def write_cifar_records(path, count: int, seed: int = 0) -> np.ndarray:
    """CIFAR-100 binary layout: coarse label byte, fine label byte, 1024 R, 1024 G, 1024 B bytes."""
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, size=(count, 3074), dtype=np.uint8)
    records[:, 1] = np.arange(count) % 100
    records[:, 0] = (records[:, 1] + 1) % 20   # coarse label deliberately different from the fine one
    records.tofile(path)
    return records


def test_cifar100_binary_is_read_with_fine_labels_and_planar_pixels(tmp_path):
    # MindSpore's Cifar100Dataset insists on the full 10000-record test.bin (30 MB), so that is written.
    records = write_cifar_records(tmp_path / "test.bin", 10000)
    cfg = Config(set="CIFAR100", data_url=str(tmp_path), num_classes=100, image_size=32, batch_size=500,
                 num_parallel_workers=2)
    dataset = create_dataset(cfg, "val", training=False)
    assert dataset.get_dataset_size() == 20
    images, labels = next(iter(iterate_checked(dataset, data_folder(cfg, "val"))))
    mean, std = 255 * np.array(CIFAR_MEAN), 255 * np.array(CIFAR_STD)
    expected = (records[:500, 2:].reshape(500, 3, 32, 32) - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_array_equal(labels, records[:500, 1].astype(np.int32))
    np.testing.assert_allclose(images, expected, atol=1e-4)


def test_cifar100_file_of_the_wrong_size_is_named(tmp_path):
    write_cifar_records(tmp_path / "train.bin", 10)
    cfg = Config(set="CIFAR100", data_url=str(tmp_path), num_classes=100)
    with pytest.raises(UserError, match=r"train\.bin has 30740 bytes"):
        create_dataset(cfg, "train", training=True)
    with pytest.raises(UserError, match=r"missing CIFAR-100 file .*test\.bin"):
        create_dataset(cfg, "val", training=False)


def test_dataset_num_classes_by_set(image_folder, tmp_path):
    assert dataset_num_classes(folder_config(image_folder)) == len(CLASSES)
    assert dataset_num_classes(Config(set="CIFAR100", data_url=str(tmp_path))) == 100
    assert dataset_num_classes(Config(set="demo", data_url=str(tmp_path))) == len(DEMO_CLASSES) == 8


# ----- user errors -----

def test_more_workers_than_cpus_are_capped_to_the_cpus():
    # MindSpore refuses more workers than CPUs; the ImageNet recipes ask for 16.
    cpus = multiprocessing.cpu_count()
    assert parallel_workers(Config(num_parallel_workers=cpus + 14)) == cpus
    assert parallel_workers(Config(num_parallel_workers=1)) == 1


def test_missing_data_url_is_named(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match=re.escape(f"data_url {missing} does not exist")):
        create_dataset(folder_config(missing), "train", training=True)


def test_missing_split_folder_is_named(tmp_path):
    os.makedirs(tmp_path / "train" / "a")
    with pytest.raises(UserError, match=re.escape(f"missing val/ folder: {tmp_path / 'val'}")):
        create_dataset(folder_config(str(tmp_path)), "val", training=False)


def test_folder_without_images_is_reported(tmp_path):
    for name in CLASSES:
        os.makedirs(tmp_path / "train" / name)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="no images .* of " + re.escape(str(tmp_path / "train"))):
        create_dataset(folder_config(str(tmp_path)), "train", training=True)


def test_fewer_than_two_classes_is_reported(tmp_path):
    os.makedirs(tmp_path / "train" / "only")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "train" / "only" / "0.png")
    with pytest.raises(UserError, match="1 class folder"):
        create_dataset(folder_config(str(tmp_path), num_classes=2), "train", training=True)


def test_num_classes_that_does_not_match_the_data_is_reported(image_folder):
    with pytest.raises(UserError, match=r"num_classes is 5 but .* has 3 classes"):
        create_dataset(folder_config(image_folder, num_classes=5), "val", training=False)


@pytest.mark.parametrize("changes, key", [
    ({"set": "MNIST"}, "set"),
    ({"interpolation": "lanczos"}, "interpolation"),
    ({"re_prob": 0.5, "re_mode": "noise"}, "re_mode"),
    ({"mix_up": 0.8, "mixup_mode": "elem"}, "mixup_mode"),
])
def test_bad_data_keys_are_named(image_folder, changes, key):
    with pytest.raises(UserError, match=key):
        create_dataset(folder_config(image_folder, **changes), "train", training=True)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_unreadable_image_is_named_within_seconds(tmp_path, damage, training):
    root = write_image_folder(tmp_path, train_per_class=6, val_per_class=6)
    split = "train" if training else "val"
    bad = tmp_path / split / "dog" / "x.jpg"
    if damage == "truncated":
        truncated_jpeg(bad)
    else:
        bad.write_text("this is a text file, not a JPEG\n")
    cfg = folder_config(root, batch_size=4)
    start = time.monotonic()
    with pytest.raises(UserError, match="unreadable image.*" + re.escape(str(bad))):
        all_batches(cfg, split, training)
    assert time.monotonic() - start < 20


def encoded(image_format: str, **options) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_guard_refuses_a_jpeg_cut_anywhere_and_passes_the_whole_file(progressive):
    # MindSpore's decoder crashes (SIGFPE/SIGSEGV) or hangs on many of these, so none may reach it.
    data = encoded("JPEG", quality=90, progressive=progressive)
    assert jpeg_header_problem(data) is None
    # From the 2-byte start-of-image marker on; shorter data is no JPEG and MindSpore rejects it cleanly.
    assert all(jpeg_header_problem(data[:length]) is not None for length in range(2, len(data)))


def test_jpeg_guard_refuses_zero_sampling_factors_and_ignores_other_formats():
    data = bytearray(encoded("JPEG", quality=90))
    frame = data.index(b"\xff\xc0")
    data[frame + 2 + 2 + 6 + 1] = 0x00  # marker, length, precision/height/width/count, first component id
    assert jpeg_header_problem(bytes(data)) == "corrupt frame header"
    assert jpeg_header_problem(encoded("PNG")[:100]) is None  # PNG decoding fails cleanly in MindSpore


def test_failure_naming_no_file_is_traced_by_checking_every_image(tmp_path):
    root = write_image_folder(tmp_path, train_per_class=3, val_per_class=1)
    truncated_jpeg(tmp_path / "train" / "cat" / "broken.jpg")
    (tmp_path / "train" / "emu" / "x.jpg").write_text("text")
    error = RuntimeError("Exception thrown from dataset pipeline. Refer to 'Dataset Pipeline Error Message'.")
    user_error = explain_pipeline_error(error, data_folder(folder_config(root), "train"))
    assert user_error is not None
    assert "2 images" in str(user_error) and "broken.jpg" in str(user_error) and "x.jpg" in str(user_error)


def test_errors_that_are_not_about_images_pass_through(image_folder):
    with pytest.raises(RuntimeError, match="unrelated"), reported_image_errors(image_folder):
        raise RuntimeError("unrelated failure")


def test_preprocess_image_names_a_missing_or_unreadable_file(tmp_path):
    cfg = Config(image_size=32)
    with pytest.raises(UserError, match="image not found"):
        preprocess_image(str(tmp_path / "missing.jpg"), cfg)
    bad = tmp_path / "x.jpg"
    bad.write_text("not an image")
    with pytest.raises(UserError, match=re.escape(f"unreadable image {bad}")):
        preprocess_image(str(bad), cfg)
