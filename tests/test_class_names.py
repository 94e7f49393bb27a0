"""Class names travel with the model: inside checkpoints, in the shipped label lists, and as one warning line when
a model's classes are not a data set's."""

import numpy as np
import pytest

from src.checkpoint import save_checkpoint_atomic
from src.class_names import (
    checkpoint_entry,
    read_checkpoint_class_names,
    read_classes_file,
    warn_if_classes_differ,
    write_classes_file,
)
from src.data.known_classes import cifar100_classes, imagenet1k_classes
from src.deploy.binfiles import BinEntry, LabelFile, result_file, write_label_file
from src.errors import UserError
from src.models import create_model
from src.tools.import_weights import import_weights
from src.tools.predict import warn_on_other_classes

ARCH = "RepVGG-A0-cifar"


def test_checkpoints_carry_class_names_that_survive_copying_alone(tmp_path):
    names = ["tabby cat", "chien", "émeu"]
    written = save_checkpoint_atomic(create_model(ARCH, num_classes=3), tmp_path / "a" / "m.ckpt",
                                     append_dict=checkpoint_entry(names))
    copy = tmp_path / "b" / "copy.ckpt"
    copy.parent.mkdir()
    copy.write_bytes(written.read_bytes())
    assert read_checkpoint_class_names(copy) == names
    plain = save_checkpoint_atomic(create_model(ARCH, num_classes=3), tmp_path / "plain.ckpt")
    assert read_checkpoint_class_names(plain) is None


def test_classes_file_round_trips_and_refuses_names_it_could_not_read_back(tmp_path):
    names = ["n01440764", "with space", "#hash first"]
    assert read_classes_file(write_classes_file(tmp_path / "classes.txt", names)) == names
    with pytest.raises(UserError, match="cannot be stored one per line"):
        write_classes_file(tmp_path / "bad.txt", ["ok", "two\nlines"])


def test_shipped_label_lists_are_complete_and_in_label_order():
    imagenet, cifar = imagenet1k_classes(), cifar100_classes()
    assert len(imagenet) == len(set(imagenet)) == 1000
    assert (imagenet[0], imagenet[1], imagenet[999]) == ("tench", "goldfish", "toilet tissue")
    assert len(cifar) == len(set(cifar)) == 100
    assert list(cifar) == sorted(cifar)  # CIFAR-100's fine labels are numbered alphabetically
    assert not any(name.startswith("#") for name in (*imagenet, *cifar))


def write_pytorch_named_weights(path, num_classes: int) -> str:
    """Weights of a fresh network under PyTorch's BatchNorm names, as the official checkpoints have them."""
    torch_names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    state = {}
    for name, param in create_model(ARCH, num_classes=num_classes).parameters_and_names():
        prefix, _, last = name.rpartition(".")
        state[f"{prefix}.{torch_names.get(last, last)}"] = param.asnumpy()
    np.savez(path, **state)
    return str(path)


@pytest.mark.parametrize(("num_classes", "names"), [(1000, list(imagenet1k_classes())), (5, None)])
def test_imported_imagenet_weights_carry_the_imagenet_names(tmp_path, num_classes, names):
    source = write_pytorch_named_weights(tmp_path / "weights.npz", num_classes)
    written = import_weights(ARCH, source, str(tmp_path / "imported.ckpt"))
    assert read_checkpoint_class_names(written) == names


def test_a_folder_with_other_class_folders_gets_one_warning_line(tmp_path, caplog):
    for name in ("cat", "dog", "fox"):
        (tmp_path / name).mkdir()
    warn_on_other_classes(["cat", "dog", "emu"], [str(tmp_path)])
    warn_on_other_classes(["cat", "dog", "fox"], [str(tmp_path)])
    assert not warn_if_classes_differ(None, ["cat"], "unnamed")
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "class 2 is 'emu' against 'fox'" in warnings[0]


def test_postprocess_names_the_models_classes_and_warns_when_the_data_has_others(tmp_path, caplog):
    from postprocess import main

    entries = (BinEntry("000000", (0,), ("cat/0.jpg",)), BinEntry("000001", (2,), ("fox/0.jpg",)))
    labels = write_label_file(tmp_path / "labels.json",
                              LabelFile((1, 3, 32, 32), ("cat", "dog", "fox"), entries, str(tmp_path)))
    results = tmp_path / "results"
    results.mkdir()
    for entry, logits in zip(entries, ([3.0, 1.0, 0.0], [0.0, 1.0, 3.0]), strict=True):
        np.asarray(logits, "<f4").tofile(result_file(results, entry.stem))
    model = tmp_path / "m.mindir"
    model.write_bytes(b"stands for the exported graph; postprocess.py only reads the names beside it")
    write_classes_file(tmp_path / "m.classes.txt", ["cat", "dog", "emu"])
    assert main(["--result_path", str(results), "--label_path", str(labels), "--model", str(model)]) == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("3 classes: cat, dog, emu" in message for message in messages)
    assert [m for m in messages if m.startswith("warning")] == [
        f"warning: the model's classes differ from the classes in {labels} (class 2 is 'emu' against 'fox')"]
