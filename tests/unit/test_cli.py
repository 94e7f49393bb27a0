"""The command-line vocabulary: one name per thing across scripts, other names accepted as aliases with a
note, help for every config flag from the config's comments with the recipe's values as defaults, and
eval/export help without the training-only keys."""

import argparse
import re
from pathlib import Path

import pytest

from src.cli import add_flag
from src.config import EVAL_KEYS, Config, add_config_arguments, config_from_args, key_help
from src.errors import UserError

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "src" / "configs" / "RepVGG-A0.yaml"
TRAINING_ONLY = ("epochs", "base_lr", "optimizer", "mix_up", "with_ema", "teacher_ckpt", "train_url")


def notes(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("note:")]


def test_an_alias_sets_the_same_value_and_says_which_flag_it_stands_for(caplog):
    parser = argparse.ArgumentParser()
    add_flag(parser, "--file_name", "--output", default=None)
    assert parser.parse_args(["--file_name", "a.onnx"]).file_name == "a.onnx"
    assert notes(caplog) == []
    assert parser.parse_args(["--output", "b.onnx"]).file_name == "b.onnx"
    assert notes(caplog) == ["note: --output is read as --file_name"]
    assert "--file_name FILE_NAME, --output FILE_NAME" in parser.format_help()


def test_config_key_aliases_reach_the_config(tmp_path, caplog):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, [])
    args = parser.parse_args(["--config", str(RECIPE), "--dataset_path", str(tmp_path), "--checkpoint", "m.ckpt"])
    cfg = config_from_args(args, check_paths=False)
    assert (cfg.data_url, cfg.pretrained) == (str(tmp_path), "m.ckpt")
    assert notes(caplog) == ["note: --dataset_path is read as --data_url", "note: --checkpoint is read as --pretrained"]


def test_every_config_key_is_described_by_its_comment_in_the_config():
    described = key_help()
    assert set(described) == {field for field in Config.__dataclass_fields__}
    assert all(text.strip() for text in described.values())
    assert "centre crop" in described["crop_pct"]                  # the comment on the key's line
    assert described["max_nonfinite_steps"].startswith("A step whose loss")  # the comment above it


def help_of(argv: list[str], **options) -> str:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, argv, **options)
    return " ".join(parser.format_help().split())  # argparse wraps lines where it likes


def test_help_shows_the_recipes_values_as_defaults(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"base: {RECIPE}\nepochs: 7\n")
    with_recipe = help_of(["--config", str(recipe), "--help"])
    assert "--epochs VALUE training epochs (recipe: 7)" in with_recipe
    assert "(recipe: RepVGG-A0)" in with_recipe                     # from the base file
    assert "--epochs VALUE training epochs (built-in default: 120)" in help_of(["--help"])


def test_eval_help_lists_what_eval_uses_and_still_accepts_training_keys():
    text = help_of(["--config", str(RECIPE)], shown=EVAL_KEYS, required=("pretrained",))
    for key in TRAINING_ONLY:
        assert f"--{key} VALUE" not in text
    for key in EVAL_KEYS:
        assert f"--{key} VALUE" in text
    assert "export (required)" in text
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, [], shown=EVAL_KEYS)
    assert parser.parse_args(["--config", str(RECIPE), "--epochs", "3"]).epochs == "3"


def test_a_required_key_given_neither_as_flag_nor_in_the_recipe_is_one_error():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, [], required=("pretrained",))
    with pytest.raises(UserError, match=r"^--pretrained is required \(on the command line or in "):
        config_from_args(parser.parse_args(["--config", str(RECIPE)]), check_paths=False)
    given = parser.parse_args(["--config", str(RECIPE), "--pretrained", "m.ckpt"])
    assert config_from_args(given, check_paths=False).pretrained == "m.ckpt"


@pytest.mark.parametrize("script", ["eval", "export"])
def test_eval_and_export_help_show_no_training_keys_and_export_batch_one(script, capsys):
    main = __import__(script).main
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(RECIPE), "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--pretrained VALUE, --checkpoint VALUE" in text and "(required)" in text
    assert not [key for key in TRAINING_ONLY if f"--{key} VALUE" in text]
    if script == "export":
        assert "--batch_size VALUE batch of the exported graph (default: 1)" in text
        assert "--file_name FILE_NAME, --output FILE_NAME" in text


# One name per thing across the entry points: (script, the name it uses, the other names it accepts). ModelZoo
# scripts keep ModelZoo's names (infer_onnx.py's --onnx_path, preprocess.py's --output_path).
VOCABULARY = [
    ("predict", "--model", ("--onnx_path", "--mindir_path")),
    ("postprocess", "--model", ("--onnx_path", "--mindir_path")),
    ("infer_onnx", "--onnx_path", ("--model",)),
    ("src.tools.quantize_onnx", "--onnx_path", ("--model",)),
    ("predict", "--output_path", ("--output",)),
    ("preprocess", "--output_path", ("--output",)),
    ("export", "--file_name", ("--output",)),
    ("src.tools.import_weights", "--file_name", ("--output",)),
    ("src.tools.quantize_onnx", "--file_name", ("--output",)),
    ("infer_onnx", "--dataset_path", ("--data_url",)),
    ("preprocess", "--dataset_path", ("--data_url",)),
    ("src.tools.import_weights", "--pretrained", ("--input",)),
    ("predict", "--pretrained", ("--checkpoint",)),
]


@pytest.mark.parametrize(("script", "name", "aliases"), VOCABULARY)
def test_each_script_takes_the_other_names_of_a_flag_as_aliases_with_a_note_in_its_help(script, name, aliases,
                                                                                        capsys):
    main = __import__(script, fromlist=["main"]).main
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(RECIPE), "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    metavar = re.search(rf"{name} ([A-Z_]+),", text)[1]
    assert ", ".join(f"{flag} {metavar}" for flag in (name, *aliases)) in text  # one flag, several names
    assert f"{' and '.join(aliases)}: the same flag under the name other scripts use" in text
