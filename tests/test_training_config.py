"""Training config: YAML plus overrides, messages that say what to fix, and the copy saved beside a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curation.errors import InvalidInput
from curation.store import Store
from schemas.training import DEFAULT_TARGET_MODULES, TrainConfig
from tiny_lm import LEAD, DemoTemplate, demo_db, demo_template  # noqa: F401
from training.config import FIELDS, load_config, parse_overrides, save_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file():
    assert load_config() == TrainConfig()
    assert load_config().target_modules == DEFAULT_TARGET_MODULES


def test_file_settings_then_overrides_on_top(tmp_path):
    path = write(tmp_path, "base_model: /models/tiny\nlearning_rate: 0.001\nlora_r: 8\nepochs: 2\npacking: false\n")
    config = load_config(path, {"lora_r": 4, "max_steps": 30, "epochs": None})
    assert config.base_model == "/models/tiny" and config.learning_rate == 0.001 and config.packing is False
    assert config.lora_r == 4 and config.max_steps == 30  # the overrides win
    assert config.epochs == 2  # a None override leaves the file's value


def test_overrides_are_read_as_yaml():
    pairs = ["learning_rate=1e-4", "lora_r=8", "packing=false", "target_modules=[q_proj, v_proj]", "max_steps=", "name_ok = x"]
    assert parse_overrides(pairs) == {
        "learning_rate": "1e-4",  # YAML 1.1 reads an exponent without a dot as text; the schema parses it
        "lora_r": 8,
        "packing": False,
        "target_modules": ["q_proj", "v_proj"],
        "max_steps": None,
        "name_ok": "x",
    }
    config = load_config(None, parse_overrides(["learning_rate=1e-4", "target_modules=q_proj, v_proj", "max_steps="]))
    assert config.learning_rate == pytest.approx(1e-4)
    assert config.target_modules == ("q_proj", "v_proj")
    assert config.max_steps is None
    assert load_config(None, {"target_modules": "all-linear"}).target_modules == "all-linear"


@pytest.mark.parametrize("pair", ["learning_rate", "=3", "  =x"])
def test_an_override_without_key_and_value_is_refused(pair):
    with pytest.raises(InvalidInput, match="must look like key=value"):
        parse_overrides([pair])


def test_an_unreadable_override_value_is_refused():
    with pytest.raises(InvalidInput, match="cannot read the value"):
        parse_overrides(["target_modules=[q_proj"])


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("learnig_rate", "learning_rate"), ("lora_rank", "lora_r"), ("batchsize", "batch_size"), ("max_step", "max_steps")],
)
def test_an_unknown_key_suggests_the_close_match(tmp_path, key, suggestion):
    with pytest.raises(InvalidInput, match=f"unknown training setting '{key}'; did you mean '{suggestion}'"):
        load_config(None, {key: 1})
    with pytest.raises(InvalidInput, match=f"did you mean '{suggestion}'"):
        load_config(write(tmp_path, f"{key}: 1\n"))


def test_an_unknown_key_with_no_close_match_lists_the_settings():
    with pytest.raises(InvalidInput, match="unknown training setting 'colour'; known settings: base_model, lora_r") as raised:
        load_config(None, {"colour": "blue"})
    assert all(field in str(raised.value) for field in FIELDS)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"lora_r": 0}, "lora_r: Input should be greater than or equal to 1"),
        ({"learning_rate": 2}, "learning_rate: Input should be less than or equal to 1"),
        ({"schedule": "exponential"}, "schedule: Input should be 'cosine', 'linear' or 'constant'"),
        ({"batch_size": "eight"}, "batch_size: Input should be a valid integer"),
        ({"target_modules": []}, "target_modules: name at least one module"),
        ({"precision": "int4"}, "precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'"),
        ({"max_seq_length": 8}, "max_seq_length: Input should be greater than or equal to 16"),
    ],
)
def test_bad_values_give_one_readable_line(overrides, expected):
    with pytest.raises(InvalidInput) as raised:
        load_config(None, overrides)
    message = str(raised.value)
    assert message.startswith("invalid training config: ") and expected in message
    assert "\n" not in message and "pydantic" not in message  # no traceback-shaped text for the user


def test_bad_values_in_a_file_name_the_file(tmp_path):
    path = write(tmp_path, "lora_dropout: 1.5\nwarmup_ratio: -1\n")
    with pytest.raises(InvalidInput) as raised:
        load_config(path)
    message = str(raised.value)
    assert f"invalid training config in {path}" in message
    assert "lora_dropout: Input should be less than 1" in message and "warmup_ratio: Input should be greater" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lora_r: [1\n", "is not valid YAML"),
        ("- lora_r\n- 8\n", "must hold a mapping of settings (key: value), not list"),
        ("just words\n", "must hold a mapping of settings (key: value), not str"),
    ],
)
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as raised:
        load_config(path)
    assert str(path) in str(raised.value) and expected in str(raised.value)


def test_an_empty_file_means_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing set yet\n")) == TrainConfig()


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match=r"cannot read config .*missing\.yaml: No such file"):
        load_config(tmp_path / "missing.yaml")


def test_save_and_load_round_trip(tmp_path):
    config = TrainConfig(base_model="/models/tiny", lora_r=4, target_modules=("q_proj", "v_proj"), max_steps=9)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert list(yaml.safe_load((tmp_path / "config.yaml").read_text())) == list(FIELDS)  # every setting, in order
    assert load_config(tmp_path / "config.yaml").config_hash() == config.config_hash()


def test_config_hash_tells_settings_apart():
    assert TrainConfig().config_hash() == TrainConfig().config_hash()
    assert TrainConfig(lora_r=8).config_hash() != TrainConfig().config_hash()
    assert len(TrainConfig().config_hash()) == 12


def test_the_config_is_saved_beside_the_run(demo_db, demo_template: DemoTemplate):  # noqa: F811
    from training.runs import create_run, get_run

    store = Store(demo_db)
    config = load_config(None, {"base_model": "smollm2-135m", "lora_r": 4, "max_steps": 3, "target_modules": "q_proj,v_proj"})
    run = create_run(store, LEAD, demo_template.small_id, config)
    saved = Path(run.run_dir) / "config.yaml"
    assert saved.parent == demo_db.parent / "runs" / run.id
    assert load_config(saved) == config == get_run(store, run.id).config
    assert run.config_hash == config.config_hash()
    assert run.status == "queued" and run.snapshot_id == demo_template.small_id
    store.close()
