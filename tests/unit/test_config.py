"""The configuration system: shipped recipes, validation messages, command-line overrides, save/load."""

import argparse
from pathlib import Path

import pytest

from src.config import (
    CHOICES,
    Config,
    add_config_arguments,
    config_from_args,
    load_config,
    save_config,
)
from src.data.transforms import ERASING_MODES, INTERPOLATIONS
from src.errors import UserError
from src.rand_augment_spec import RandAugmentSpec, parse_rand_augment

CONFIG_DIR = Path(__file__).resolve().parents[2] / "src" / "configs"
RECIPES = sorted(p for p in CONFIG_DIR.glob("*.yaml") if not p.name.endswith("_base.yaml"))
MODELZOO_ARCHS = ["A0", "A1", "A2", "B0", "B1", "B1g2", "B1g4", "B2", "B2g2", "B2g4", "B3", "B3g2", "B3g4",
                  "D2se"]
CIFAR_ARCHS = ["A0", "A1", "A2", "B0", "B1", "B1g4"]


def write_yaml(folder: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, overrides: dict | None = None, check_paths: bool = False) -> str:
    with pytest.raises(UserError) as caught:
        load_config(path, overrides, check_paths=check_paths)
    return str(caught.value)


def parser_with_config_arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    parser.add_argument("--resume", default=None)
    return parser


# ----- shipped recipes -----


def test_every_modelzoo_cifar_and_demo_recipe_is_shipped():
    expected = {f"RepVGG-{a}.yaml" for a in MODELZOO_ARCHS}
    expected |= {f"RepVGG-{a}-cifar100.yaml" for a in CIFAR_ARCHS}
    expected |= {"demo.yaml"}
    assert expected <= {p.name for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_loads_and_validates(path):
    cfg = load_config(path, check_paths=False)
    arch_in_name = path.stem.removesuffix("-cifar100")
    if path.stem.startswith("RepVGG-"):
        assert cfg.arch == (arch_in_name + "-cifar" if path.stem.endswith("-cifar100") else arch_in_name)


def test_heavy_imagenet_variants_inherit_the_200_epoch_recipe_and_light_ones_do_not():
    light = load_config(CONFIG_DIR / "RepVGG-A0.yaml", check_paths=False)
    heavy = load_config(CONFIG_DIR / "RepVGG-B3.yaml", check_paths=False)
    assert (light.epochs, light.auto_augment, light.mix_up) == (120, None, 0.0)
    assert (heavy.epochs, heavy.auto_augment, heavy.mix_up) == (200, "autoaug", 0.2)
    # Everything else comes from the one shared base.
    assert (heavy.base_lr, heavy.batch_size, heavy.weight_decay) == (light.base_lr, light.batch_size, 1e-4)


def test_cifar100_recipe_is_the_seed_000_recipe():
    cfg = load_config(CONFIG_DIR / "RepVGG-B1g4-cifar100.yaml", check_paths=False)
    assert (cfg.set, cfg.num_classes, cfg.image_size) == ("CIFAR100", 100, 32)
    assert (cfg.epochs, cfg.batch_size, cfg.base_lr, cfg.weight_decay, cfg.min_lr) == (250, 512, 0.4, 5e-4, 1e-6)
    assert cfg.nesterov and cfg.label_smoothing == 0.1
    # torchvision's magnitude 9 of 30, which the Jittor RepVGG on CIFAR-100 used, is 3 on timm's 0-10 scale.
    assert parse_rand_augment(cfg.auto_augment) == RandAugmentSpec(num_ops=2, magnitude=3.0)


def test_demo_recipe_trains_on_cpu_with_a_fixed_loss_scale():
    cfg = load_config(CONFIG_DIR / "demo.yaml", check_paths=False)
    assert (cfg.set, cfg.device_target, cfg.arch) == ("demo", "CPU", "RepVGG-A0-cifar")
    assert not cfg.is_dynamic_loss_scale


def test_modelzoo_spellings_load(tmp_path):
    # Idioms of the MindSpore ModelZoo recipe: `None` for null, ints for floats, `5.`, `False`, YAML-1.1 string `1e-4`.
    path = write_yaml(tmp_path, "arch: RepVGG-A0\nauto_augment: None\nre_prob: 0\nclip_global_norm_value: 5.\n"
                                "with_ema: False\nmixup_prob: 1.\nbeta: [ 0.9, 0.999 ]\nweight_decay: 1e-4\n")
    cfg = load_config(path, check_paths=False)
    assert cfg.auto_augment is None and cfg.re_prob == 0.0 and isinstance(cfg.re_prob, float)
    assert (cfg.clip_global_norm_value, cfg.with_ema, cfg.weight_decay) == (5.0, False, 1e-4)


def test_choices_are_case_insensitive_and_stored_in_canonical_spelling(tmp_path):
    path = write_yaml(tmp_path, "arch: repvgg_b1g4\nset: imagenet\namp_level: o2\ndevice_target: ascend\n")
    cfg = load_config(path, check_paths=False)
    assert (cfg.arch, cfg.set, cfg.amp_level, cfg.device_target) == ("RepVGG-B1g4", "ImageNet", "O2", "Ascend")


# ----- file-level failures -----


def test_missing_config_file_is_named(tmp_path):
    assert str(tmp_path / "nope.yaml") in error_of(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write_yaml(tmp_path, "epochs: 3\nbatch_size: [1, 2\nseed: 0\n")
    message = error_of(path)
    assert str(path) in message and "line 3" in message


def test_duplicate_key_names_file_and_line(tmp_path):
    path = write_yaml(tmp_path, "epochs: 3\nseed: 1\nepochs: 5\n")
    message = error_of(path)
    assert "duplicate key 'epochs'" in message and str(path) in message and "line 3" in message


@pytest.mark.parametrize("text", ["- epochs\n- 3\n", "", "just a string\n"], ids=["list", "empty", "scalar"])
def test_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    path = write_yaml(tmp_path, text)
    assert "mapping" in error_of(path) and str(path) in error_of(path)


def test_folder_given_as_config_is_refused(tmp_path):
    assert "cannot read config file" in error_of(tmp_path)


def test_unknown_key_suggests_the_closest_known_key(tmp_path):
    path = write_yaml(tmp_path, "bath_size: 32\n")
    assert error_of(path) == f"unknown key 'bath_size' in {path} (did you mean 'batch_size'?)"


def test_unknown_key_without_a_close_match_has_no_suggestion(tmp_path):
    path = write_yaml(tmp_path, "zzzz: 1\n")
    assert error_of(path) == f"unknown key 'zzzz' in {path}"


# ----- value failures: each names the key and the file -----


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("epochs", "abc", "expected an integer"),
    ("epochs", "3.5", "expected an integer"),
    ("epochs", "true", "expected an integer"),
    ("base_lr", "abc", "expected a number"),
    ("base_lr", ".inf", "expected a finite number"),
    ("beta", "[0.9]", "expected a list of 2 numbers"),
    ("beta", "[0.9, abc]", "expected a number"),
    ("with_ema", "1", "expected true or false"),
    ("arch", "5", "expected a non-empty string"),
    ("set", "null", "expected a non-empty string"),
    ("pretrained", "[a, b]", "expected a non-empty string"),
])
def test_wrong_type_names_key_and_file(tmp_path, key, value, reason):
    path = write_yaml(tmp_path, f"{key}: {value}\n")
    message = error_of(path)
    assert message.startswith(f"invalid value for '{key}' in {path}: {reason}")


@pytest.mark.parametrize(("key", "value", "bound"), [
    ("batch_size", "0", ">= 1"),
    ("epochs", "0", ">= 1"),
    ("base_lr", "0", "> 0"),
    ("re_prob", "1.5", "in [0, 1]"),
    ("mixup_prob", "-0.1", "in [0, 1]"),
    ("switch_prob", "2", "in [0, 1]"),
    ("label_smoothing", "1.0", "in [0, 1)"),
    ("ema_decay", "1.0", "in (0, 1)"),
    ("ema_decay", "0", "in (0, 1)"),
    ("momentum", "1", "in [0, 1)"),
    ("beta", "[0.9, 1.0]", "in [0, 1)"),
    ("num_classes", "1", ">= 2"),
    ("keep_checkpoint_max", "0", ">= 1"),
    ("eval_every", "-1", ">= 0"),
    ("num_parallel_workers", "0", ">= 1"),
    ("device_id", "-1", ">= 0"),
    ("loss_scale", "0", "> 0"),
    ("clip_global_norm_value", "-1", ">= 0"),
    ("warmup_length", "-1", ">= 0"),
    ("weight_decay", "-0.0001", ">= 0"),
])
def test_impossible_value_names_key_file_and_bound(tmp_path, key, value, bound):
    path = write_yaml(tmp_path, f"{key}: {value}\n")
    message = error_of(path)
    assert message.startswith(f"invalid value for '{key}' in {path}: must be {bound}")


@pytest.mark.parametrize(("key", "value"), [
    ("set", "ImageNet21k"),
    ("optimizer", "sgd"),
    ("lr_scheduler", "poly_lr"),
    ("amp_level", "O4"),
    ("device_target", "TPU"),
    ("re_mode", "zeros"),
    ("interpolation", "lanczos"),
])
def test_value_outside_its_choices_lists_them(tmp_path, key, value):
    path = write_yaml(tmp_path, f"{key}: {value}\n")
    message = error_of(path)
    assert message.startswith(f"invalid value for '{key}' in {path}: must be one of ")


def test_unknown_arch_lists_the_registered_ones(tmp_path):
    path = write_yaml(tmp_path, "arch: RepVGG-Z9\n")
    message = error_of(path)
    assert message.startswith(f"invalid value for 'arch' in {path}: unknown arch 'RepVGG-Z9'")
    assert "RepVGG-A0-cifar" in message


@pytest.mark.parametrize("mode", ["pair", "elem"])
def test_unimplemented_mixup_modes_are_refused_by_name(tmp_path, mode):
    path = write_yaml(tmp_path, f"mixup_mode: {mode}\n")
    assert f"'mixup_mode' in {path}: mode '{mode}' is not implemented" in error_of(path)


@pytest.mark.parametrize("spec", ["augmix-m9", "rand-m11", "rand-n2", "rand-m9-inc0"])
def test_bad_auto_augment_names_key_and_file(tmp_path, spec):
    path = write_yaml(tmp_path, f"auto_augment: {spec}\n")
    assert error_of(path).startswith(f"invalid value for 'auto_augment' in {path}: ")


def test_warmup_longer_than_training_names_both_keys(tmp_path):
    path = write_yaml(tmp_path, "epochs: 5\nwarmup_length: 10\n")
    assert error_of(path) == f"'warmup_length' in {path} must not exceed 'epochs' in {path}: 10 > 5"


def test_min_lr_above_base_lr_is_refused_even_when_one_is_a_default(tmp_path):
    path = write_yaml(tmp_path, "min_lr: 0.5\n")
    message = error_of(path)
    assert message.startswith(f"'min_lr' in {path} must not exceed 'base_lr' (built-in default")


# ----- path checks -----


def test_missing_data_folder_is_refused_when_paths_are_checked(tmp_path):
    path = write_yaml(tmp_path, f"set: ImageNet\ndata_url: {tmp_path / 'imagenet'}\n")
    message = error_of(path, check_paths=True)
    assert message.startswith(f"'data_url' in {path}: '{tmp_path / 'imagenet'}' is not an existing data set folder")
    assert load_config(path, check_paths=False).data_url == str(tmp_path / "imagenet")


def test_existing_data_folder_passes_the_path_check(tmp_path):
    (tmp_path / "cifar").mkdir()
    path = write_yaml(tmp_path, f"set: CIFAR100\ndata_url: {tmp_path / 'cifar'}\nnum_classes: 100\n")
    assert load_config(path).set == "CIFAR100"


def test_demo_data_folder_need_not_exist_yet(tmp_path):
    path = write_yaml(tmp_path, f"set: demo\ndata_url: {tmp_path / 'demo'}\n")
    assert load_config(path).data_url == str(tmp_path / "demo")


def test_missing_pretrained_checkpoint_is_refused_when_paths_are_checked(tmp_path):
    (tmp_path / "data").mkdir()
    path = write_yaml(tmp_path, f"data_url: {tmp_path / 'data'}\npretrained: {tmp_path / 'w.ckpt'}\n")
    assert error_of(path, check_paths=True).startswith(f"'pretrained' in {path}: ")
    (tmp_path / "w.ckpt").write_bytes(b"")
    assert load_config(path).pretrained == str(tmp_path / "w.ckpt")


# ----- base: inheritance -----


def test_base_file_is_read_first_and_the_including_file_wins(tmp_path):
    write_yaml(tmp_path, "epochs: 7\nbatch_size: 16\n", name="common_base.yaml")
    (tmp_path / "sub").mkdir()
    path = write_yaml(tmp_path / "sub", "base: ../common_base.yaml\nbatch_size: 8\n")
    cfg = load_config(path, check_paths=False)
    assert (cfg.epochs, cfg.batch_size) == (7, 8)


def test_bad_value_in_a_base_file_names_the_base_file(tmp_path):
    base = write_yaml(tmp_path, "epochs: 0\n", name="common_base.yaml")
    path = write_yaml(tmp_path, "base: common_base.yaml\n")
    assert error_of(path).startswith(f"invalid value for 'epochs' in {base}: ")


def test_missing_base_file_names_the_including_file(tmp_path):
    path = write_yaml(tmp_path, "base: gone.yaml\n")
    assert error_of(path) == f"base file 'gone.yaml' named in {path} not found (looked for {tmp_path / 'gone.yaml'})"


def test_base_files_including_each_other_are_refused(tmp_path):
    write_yaml(tmp_path, "base: b.yaml\n", name="a.yaml")
    write_yaml(tmp_path, "base: a.yaml\n", name="b.yaml")
    assert "loop" in error_of(tmp_path / "a.yaml")


def test_base_must_be_a_file_name(tmp_path):
    path = write_yaml(tmp_path, "base: [a.yaml]\n")
    assert error_of(path).startswith(f"'base' in {path} must be a YAML file name")


# ----- overrides and the command line -----


def test_overrides_are_validated_and_named_as_flags(tmp_path):
    path = write_yaml(tmp_path, "epochs: 5\n")
    assert load_config(path, {"epochs": 9}, check_paths=False).epochs == 9
    assert error_of(path, {"epochs": 0}) == f"invalid value for --epochs (config {path}): must be >= 1, got 0"
    assert "did you mean 'epochs'" in error_of(path, {"epoch": 3})


def test_modelzoo_train_command_line_is_accepted():
    argv = ["--device_id", "0", "--device_target", "CPU", "--config", str(CONFIG_DIR / "RepVGG-A0.yaml")]
    cfg = config_from_args(parser_with_config_arguments().parse_args(argv), check_paths=False)
    assert (cfg.device_id, cfg.device_target, cfg.arch) == (0, "CPU", "RepVGG-A0")


def test_command_line_values_are_read_as_yaml_and_override_the_file(tmp_path):
    path = write_yaml(tmp_path, "epochs: 5\nauto_augment: rand-m9-n2\n")
    args = parser_with_config_arguments().parse_args([
        "--config", str(path), "--epochs", "3", "--with_ema", "true", "--beta", "[0.9, 0.99]",
        "--auto_augment", "None", "--resume", "last.ckpt"])
    cfg = config_from_args(args, check_paths=False)
    assert (cfg.epochs, cfg.with_ema, cfg.beta, cfg.auto_augment) == (3, True, (0.9, 0.99), None)
    assert args.resume == "last.ckpt"


def test_flags_not_given_leave_the_file_values_alone(tmp_path):
    path = write_yaml(tmp_path, "epochs: 5\nbase_lr: 0.3\n")
    args = parser_with_config_arguments().parse_args(["--config", str(path)])
    assert config_from_args(args, check_paths=False) == load_config(path, check_paths=False)


def test_string_flags_are_taken_verbatim(tmp_path):
    path = write_yaml(tmp_path, "epochs: 5\n")
    args = parser_with_config_arguments().parse_args(["--config", str(path), "--train_url", "2024"])
    assert config_from_args(args, check_paths=False).train_url == "2024"


@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--epochs", "abc", "invalid value for --epochs"),
    ("--beta", "[0.9", "cannot read the value of --beta"),
    ("--epochs", "3", "must not exceed --epochs"),  # the file's 5 warm-up epochs no longer fit
])
def test_bad_command_line_value_names_the_flag(tmp_path, flag, value, fragment):
    path = write_yaml(tmp_path, "warmup_length: 5\n")
    args = parser_with_config_arguments().parse_args(["--config", str(path), flag, value])
    with pytest.raises(UserError, match=fragment):
        config_from_args(args, check_paths=False)


def test_command_line_path_check_names_the_flag(tmp_path):
    path = write_yaml(tmp_path, "set: demo\n")
    args = parser_with_config_arguments().parse_args(
        ["--config", str(path), "--set", "ImageNet", "--data_url", str(tmp_path / "missing")])
    with pytest.raises(UserError, match=r"^--data_url "):
        config_from_args(args)


# ----- save / load -----


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(CONFIG_DIR / "RepVGG-B3.yaml", {"beta": [0.8, 0.95], "pretrained": "w.ckpt"},
                      check_paths=False)
    target = tmp_path / "run" / "config.yaml"
    save_config(cfg, target)
    assert load_config(target, check_paths=False) == cfg
    assert [p.name for p in target.parent.iterdir()] == ["config.yaml"]  # no temp file left behind


def test_saving_replaces_an_existing_record(tmp_path):
    target = tmp_path / "config.yaml"
    save_config(Config(epochs=3), target)
    save_config(Config(epochs=4), target)
    assert load_config(target, check_paths=False).epochs == 4


# ----- a Config checks itself when built -----


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"epochs": 0}, "invalid value for 'epochs': must be >= 1, got 0"),
    ({"set": "MNIST"}, "invalid value for 'set': must be one of ImageNet, CIFAR100, demo"),
    ({"auto_augment": "rand-m11"}, "invalid value for 'auto_augment'"),
    ({"warmup_length": 5, "epochs": 3}, "'warmup_length' must not exceed 'epochs': 5 > 3"),
    ({"kd_alpha": 0.5}, "'kd_alpha' = 0.5 needs 'teacher_arch' and 'teacher_ckpt' to be set"),
    ({"qat": True}, "'qat' = True needs 'pretrained' to be set"),
    ({"qat": True, "pretrained": "a.ckpt", "repopt_search": True}, "'qat' = True cannot be combined with "
     "'repopt_search'"),
    ({"qat": True, "pretrained": "a.ckpt", "optimizer": "repopt", "repopt_scales": "s.npz"},
     "'qat' = True cannot be combined with 'optimizer' = repopt"),
    ({"qat": True, "pretrained": "a.ckpt", "with_ema": True}, "'qat' = True cannot be combined with 'with_ema' = "
     "True: an EMA of the weights would also average the activation ranges"),
    ({"qat": True, "pretrained": "a.ckpt", "kd_alpha": 0.5, "teacher_arch": "RepVGG-A0", "teacher_ckpt": "t.ckpt"},
     "'qat' = True cannot be combined with 'kd_alpha' = 0.5: distillation into the fake-quantised network"),
    ({"qat_freeze_epochs": 3, "epochs": 2}, "'qat_freeze_epochs' must not exceed 'epochs': 3 > 2"),
    ({"qat_freeze_epochs": -1}, "invalid value for 'qat_freeze_epochs'"),
])
def test_a_config_built_directly_refuses_what_a_recipe_would(changes, fragment):
    with pytest.raises(UserError) as caught:
        Config(**changes)
    assert fragment in str(caught.value)


def test_a_config_built_directly_stores_the_canonical_spellings():
    cfg = Config(set="imagenet", amp_level="o2", arch="repvgg-a0", base_lr=1)
    assert (cfg.set, cfg.amp_level, cfg.arch, cfg.base_lr) == ("ImageNet", "O2", "RepVGG-A0", 1.0)


def test_every_choice_has_an_operator_in_the_data_pipeline():
    assert set(INTERPOLATIONS) == set(CHOICES["interpolation"])
    assert set(ERASING_MODES) == set(CHOICES["re_mode"])
