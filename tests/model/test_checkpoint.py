"""Checkpoints: model.safetensors + config.json round-trip exactly, never unpickle, and every
broken or missing file gives an HAMInputError that names the file."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from ham_core.model.checkpoint import (
    CONFIG,
    TOKENIZER,
    WEIGHTS,
    load_bundle,
    load_model,
    read_metadata,
    save_checkpoint,
    stored_parameters,
)
from ham_core.model.config import HAMConfig
from ham_core.model.model import HAMModel
from ham_core.errors import HAMInputError

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 4, 6]])


@pytest.fixture
def saved(tiny_model, tmp_path):
    save_checkpoint(tiny_model, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_round_trip_gives_identical_outputs(tiny_model, saved, monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("load_model must not use torch.load (pickle)")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = load_model(saved)
    assert not loaded.training
    assert loaded.cfg == tiny_model.cfg
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        a = tiny_model(IDS, 0.9, attention="all")
        b = loaded(IDS, 0.9, attention="all")
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.surprise, b.surprise)
    assert torch.equal(a.cached, b.cached)
    for wa, wb in zip(a.attention, b.attention):
        assert torch.equal(wa, wb)


def test_config_json_round_trip(tmp_path):
    from conftest import tiny_config

    cfg = tiny_config(chunk_size=16, norm_eps=1e-5)
    cfg.save(tmp_path / "c.json")
    assert HAMConfig.load(tmp_path / "c.json") == cfg
    assert HAMConfig.from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg


def test_metadata_round_trip(tiny_model, tmp_path):
    save_checkpoint(tiny_model, tmp_path, metadata={"steps": 120, "loss": 3.25, "corpus": "brown"})
    assert read_metadata(tmp_path) == {"steps": 120, "loss": 3.25, "corpus": "brown"}


def test_stored_parameters_count_the_models_parameters(tiny_model, saved):
    """The app shows the parameter count before torch is imported, from the file's header."""
    assert stored_parameters(saved) == tiny_model.num_parameters()
    assert stored_parameters(saved) == sum(t.numel() for t in tiny_model.state_dict().values())


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(HAMInputError) as info:
        load_model(tmp_path / "nowhere")
    assert "nowhere" in _message(info)


def test_missing_weights_names_the_file(saved):
    (saved / WEIGHTS).unlink()
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    assert str(saved / WEIGHTS) in _message(info)


def test_missing_config_names_the_file(saved):
    (saved / CONFIG).unlink()
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    assert str(saved / CONFIG) in _message(info)


@pytest.mark.parametrize("content", [b"{ not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]"],
                         ids=["bad-json", "not-utf8", "not-an-object"])
def test_bad_config_json_names_the_file(saved, content):
    (saved / CONFIG).write_bytes(content)
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    assert str(saved / CONFIG) in _message(info)


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty", "a-directory"])
def test_corrupt_weights_names_the_file(saved, how):
    path = saved / WEIGHTS
    if how == "garbage":
        path.write_bytes(b"this is not a safetensors file at all" * 10)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    assert str(path) in _message(info)


def _load_with_config_edit(saved, edit: dict) -> str:
    """Rewrite config.json with `edit` applied; load_model must refuse it: its message."""
    cfg = json.loads((saved / CONFIG).read_text())
    cfg.update(edit)
    (saved / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    return _message(info)


def test_weights_that_do_not_match_the_config_name_both_files(saved):
    assert str(saved / WEIGHTS) in _load_with_config_edit(saved, {"d_model": 48})


def test_weights_from_a_deeper_model_name_the_file(saved):
    message = _load_with_config_edit(saved, {"n_layers": 3})
    assert str(saved / WEIGHTS) in message and "missing" in message


@pytest.mark.parametrize("edit", [{"n_layers": -1}, {"vocab_size": "big"}, {"colour": "red"}],
                         ids=["bad-value", "bad-type", "unknown-key"])
def test_bad_config_values_are_input_errors(saved, edit):
    assert next(iter(edit)) in _load_with_config_edit(saved, edit)


def test_bad_config_values_name_the_file(saved):
    assert str(saved / CONFIG) in _load_with_config_edit(saved, {"colour": "red"})


def test_float_config_fields_are_checked(saved):
    assert "norm_eps" in _load_with_config_edit(saved, {"norm_eps": "tiny"})


def test_bundle_loads_model_and_tokenizer(tiny_model_dir):
    model, tokenizer = load_bundle(tiny_model_dir)
    assert tokenizer.vocab_size <= model.cfg.vocab_size
    ids = torch.tensor([tokenizer.encode("The cat sat on the mat.")])
    with torch.no_grad():
        out = model(ids, 0.5)
    assert out.logits.shape == (1, ids.shape[1], model.cfg.vocab_size)


def test_bundle_without_tokenizer_names_the_file(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    (copy / TOKENIZER).unlink()
    with pytest.raises(HAMInputError) as info:
        load_bundle(copy)
    assert str(copy / TOKENIZER) in _message(info)


def test_parameter_count_matches_the_built_model(tiny_model):
    assert tiny_model.cfg.parameter_count() == tiny_model.num_parameters()
    assert HAMConfig().parameter_count() == HAMModel(HAMConfig()).num_parameters()


@pytest.mark.parametrize("edit", [{"d_model": 100_000_000}, {"chunk_size": 1_000_000_000}, {"max_tokens": 10 ** 12},
                                  {"vocab_size": 10 ** 10}, {"n_layers": 10 ** 7}])
def test_sizes_that_cannot_fit_in_memory_are_refused_naming_file_and_field(saved, edit):
    """One line naming config.json and the field, before any allocation is tried."""
    field = next(iter(edit))
    message = _load_with_config_edit(saved, edit)
    assert "\n" not in message and str(saved / CONFIG) in message and f"{field} = " in message
    assert "memory" in message


def test_fits_is_judged_against_the_memory_given():
    cfg = HAMConfig()
    cfg.check_fits(memory=cfg.memory_bytes())
    with pytest.raises(HAMInputError, match="this machine has"):
        cfg.check_fits(memory=cfg.memory_bytes() - 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_with_non_finite_values_are_refused_naming_the_file(saved, bad):
    from safetensors.torch import load_file, save_file

    state = load_file(str(saved / WEIGHTS))
    state["blocks.1.mlp.up.weight"][3, 5] = bad
    save_file(state, str(saved / WEIGHTS))
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    message = _message(info)
    assert str(saved / WEIGHTS) in message and "blocks.1.mlp.up.weight" in message and "NaN or infinite" in message


def test_random_bytes_under_a_valid_header_are_refused(saved):
    """Random float32 bits include NaN and infinity patterns: such a file never loads silently."""
    path = saved / WEIGHTS
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    gen = torch.Generator().manual_seed(0)
    data[header:] = torch.randint(0, 256, (len(data) - header,), generator=gen, dtype=torch.uint8).numpy().tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(HAMInputError) as info:
        load_model(saved)
    assert str(path) in _message(info)
