"""The profile schema: every setting of every profile is described, typed and range-checked, and a bad value
fails with one message naming the setting and what it must be (the issue's cases: epochs 0, lr nan, batch
size 0, a crop larger than the stored image, a warm-up longer than the training)."""
from __future__ import annotations

import math

import pytest

from wbcbench.core.errors import WbcError
from wbcbench.core.profiles import (
    PROFILES,
    REQUIRED,
    SETTINGS,
    check_seed,
    check_setting,
    flag,
    get_profile,
    given,
    parse_flag_value,
    recorded,
    setting,
    setting_args,
)


def test_every_profile_has_exactly_the_schemas_settings_and_passes_its_checks():
    for name, p in PROFILES.items():
        required = {k for k, s in SETTINGS.items() if s.default is REQUIRED}
        assert required <= set(p) <= set(SETTINGS), name
        assert set(get_profile(name)) == set(SETTINGS) | {"name"}
        hp = get_profile(name)
        assert hp["name"] == name and hp["crop_size"] <= hp["stored_size"] and hp["warmup_epochs"] <= hp["epochs"]
    assert all(s.help for s in SETTINGS.values())


def test_label_smoothing_is_a_setting_off_by_default():
    assert {p["label_smoothing"] for p in PROFILES.values()} == {0.0}
    assert get_profile("paper", label_smoothing=0.1)["label_smoothing"] == 0.1


@pytest.mark.parametrize("setting, value, message", [
    ("epochs", 0, "epochs=0 is out of range: it must be an integer >= 1"),
    ("lr", math.nan, "lr=nan is out of range: it must be a finite number > 0"),
    ("lr", math.inf, "lr=inf is out of range"),
    ("lr", 0.0, "lr=0.0 is out of range: it must be a finite number > 0"),
    ("batch_size", 0, "batch_size=0 is out of range: it must be an integer >= 1"),
    ("eval_batch_size", -3, "eval_batch_size=-3 is out of range"),
    ("weight_decay", -0.1, "weight_decay=-0.1 is out of range: it must be a finite number >= 0"),
    ("mixup_alpha", -1.0, "mixup_alpha=-1.0 is out of range"),
    ("label_smoothing", 1.0, "label_smoothing=1.0 is out of range: it must be a finite number in [0, 1)"),
    ("train_subset_per_class", 0, "train_subset_per_class=0 is out of range: it must be an integer >= 1 or None"),
    ("crop_size", 64, "crop_size=64 is out of range: it must be <= stored_size=56"),
    ("warmup_epochs", 7, "warmup_epochs=7 is out of range: it must be <= epochs=6"),
])
def test_out_of_range_values_name_the_setting_and_the_range(setting, value, message):
    with pytest.raises(WbcError) as e:
        get_profile("cpu", **{setting: value})
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_bounds_themselves_are_allowed():
    hp = get_profile("cpu", epochs=1, warmup_epochs=1, crop_size=56, weight_decay=0.0, mixup_alpha=0.0,
                     label_smoothing=0.0, train_subset_per_class=1)
    assert (hp["epochs"], hp["warmup_epochs"], hp["crop_size"]) == (1, 1, 56)
    assert get_profile("cpu", epochs=3, warmup_epochs=0)["warmup_epochs"] == 0


def test_cross_checks_see_both_overridden_values():
    assert get_profile("cpu", stored_size=96, crop_size=80)["crop_size"] == 80
    assert get_profile("smoke", epochs=20, warmup_epochs=10)["warmup_epochs"] == 10
    with pytest.raises(WbcError, match="crop_size=48 is out of range: it must be <= stored_size=40"):
        get_profile("cpu", stored_size=40)


def test_types_are_checked_and_ints_become_floats():
    with pytest.raises(WbcError, match=r"epochs='two' has type str; it must be an integer >= 1"):
        get_profile("smoke", epochs="two")
    with pytest.raises(WbcError, match=r"epochs=2.0 has type float"):
        get_profile("smoke", epochs=2.0)
    with pytest.raises(WbcError, match=r"hflip=1 has type int; it must be True or False"):
        get_profile("smoke", hflip=1)
    with pytest.raises(WbcError, match=r"batch_size=True has type bool"):
        get_profile("smoke", batch_size=True)
    with pytest.raises(WbcError, match="unknown profile setting 'epoch'"):
        get_profile("smoke", epoch=1)
    with pytest.raises(WbcError, match="unknown profile 'papr'"):
        get_profile("papr")
    lr = get_profile("smoke", lr=1)["lr"]  # JSON "lr=1" and the CLI's "--lr 1" must name the same run
    assert lr == 1.0 and isinstance(lr, float)
    assert get_profile("smoke", epochs=None)["epochs"] == PROFILES["smoke"]["epochs"]  # None: the profile's


def test_check_seed():
    assert check_seed(0) == 0 and check_seed(12) == 12
    with pytest.raises(WbcError, match=r"seed=-1 is out of range: it must be an integer >= 0"):
        check_seed(-1)
    for bad in (True, 1.0, "1", None):
        with pytest.raises(WbcError, match="has type"):
            check_seed(bad)


def test_setting_args_are_cli_flags():
    assert flag("weight_decay") == "--weight-decay"
    args = setting_args({"weight_decay": 0.01, "hflip": False, "vflip": True, "epochs": 3, "lr": 1e-4,
                         "train_subset_per_class": None})
    assert args == ["--weight-decay", "0.01", "--no-hflip", "--vflip", "--epochs", "3", "--lr", "0.0001",
                    "--train-subset-per-class", "None"]
    assert setting_args({"epochs": None}) == []  # None: the profile's value
    with pytest.raises(WbcError, match="unknown profile setting 'epoch'"):
        setting_args({"epoch": 3})


def test_none_is_a_value_of_its_own_where_a_setting_allows_it():
    """train_subset_per_class=None (every image) overrides a profile's subset; for any other setting None
    means the profile's value, and the command-line text "None"/"none" is accepted only where None is."""
    assert [k for k, s in SETTINGS.items() if s.none_ok] == ["train_subset_per_class", "tent_batch_size"]
    assert PROFILES["cpu-pretrained"]["train_subset_per_class"] == 400
    assert get_profile("cpu-pretrained", train_subset_per_class=None)["train_subset_per_class"] is None
    assert get_profile("cpu-pretrained", epochs=None)["epochs"] == PROFILES["cpu-pretrained"]["epochs"]
    assert given({"epochs": None, "train_subset_per_class": None, "lr": 0.1}) == \
        {"train_subset_per_class": None, "lr": 0.1}
    for text in ("None", "none", " NONE "):
        assert parse_flag_value("train_subset_per_class", text) is None
    assert parse_flag_value("train_subset_per_class", "7") == 7
    for name, text in (("epochs", "None"), ("train_subset_per_class", "all"), ("lr", "none")):
        with pytest.raises(ValueError):
            parse_flag_value(name, text)


def test_augment_is_a_choice_defaulting_to_none_and_left_out_of_records_at_its_default():
    """`augment` came after runs were recorded: a profile need not set it, get_profile fills in "none", and
    a run record leaves it out while it is "none" (so those runs keep their names), but keeps any other."""
    assert all("augment" not in p for p in PROFILES.values())
    assert get_profile("cpu")["augment"] == "none" and get_profile("cpu", augment="hed")["augment"] == "hed"
    assert "augment" not in recorded(get_profile("cpu"))
    assert recorded(get_profile("cpu", augment="hed"))["augment"] == "hed"
    assert setting({}, "augment") == "none" and setting({"augment": "colour"}, "augment") == "colour"
    with pytest.raises(WbcError,
                       match=r"augment='sepia' is not allowed: it must be one of none, hed, colour, grayscale"):
        check_setting("augment", "sepia")
    with pytest.raises(WbcError, match="augment=1 is not allowed"):
        get_profile("cpu", augment=1)
    assert setting_args({"augment": "grayscale"}) == ["--augment", "grayscale"]
