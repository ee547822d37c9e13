"""Choosing the generation backend: llama.cpp on the packaged GGUF on CPU, transformers otherwise."""

import os

import pytest

from mlcore import llamacpp, specs


def require_llamacpp() -> None:
    """Skip where llama-cpp-python is not installed; in CI (PARLANCE_REQUIRE_SERVICES=1) fail instead."""
    if llamacpp.installed():
        return
    message = "llama-cpp-python is not installed (make install builds it)"
    if os.environ.get("PARLANCE_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def smollm2_dir(settings, tmp_path):
    settings.MLCORE_HOME = tmp_path
    converted = specs.PACKAGED["smollm2"].converted_dir
    converted.mkdir(parents=True)
    return converted


def test_the_packaged_lm_is_served_from_its_gguf_on_cpu(settings, smollm2_dir):
    require_llamacpp()
    settings.MLCORE_LM_BACKEND = "auto"
    gguf = llamacpp.serves(str(smollm2_dir), adapter=None, device_type="cpu")
    assert gguf is not None and gguf.name == specs.PACKAGED["smollm2"].gguf_file and gguf.is_file()


def test_adapters_gpus_and_the_transformers_setting_keep_transformers(settings, smollm2_dir):
    settings.MLCORE_LM_BACKEND = "auto"
    assert llamacpp.serves(str(smollm2_dir), adapter="/some/adapter", device_type="cpu") is None
    assert llamacpp.serves(str(smollm2_dir), adapter=None, device_type="cuda") is None
    settings.MLCORE_LM_BACKEND = "transformers"
    assert llamacpp.serves(str(smollm2_dir), adapter=None, device_type="cpu") is None


def test_a_model_without_a_gguf_source_uses_transformers(settings, tiny_lm_dir):
    settings.MLCORE_LM_BACKEND = "auto"
    assert llamacpp.gguf_source(tiny_lm_dir) is None
    assert llamacpp.serves(str(tiny_lm_dir), adapter=None, device_type="cpu") is None


def test_insisting_on_llamacpp_where_it_cannot_serve_says_why(settings, tiny_lm_dir, smollm2_dir):
    settings.MLCORE_LM_BACKEND = "llamacpp"
    with pytest.raises(llamacpp.BackendUnavailable, match="LoRA adapter|not installed"):
        llamacpp.serves(str(smollm2_dir), adapter="/some/adapter", device_type="cpu")
    with pytest.raises(llamacpp.BackendUnavailable, match="no GGUF source|not installed"):
        llamacpp.serves(str(tiny_lm_dir), adapter=None, device_type="cpu")


def test_a_sidecar_can_name_the_gguf_a_directory_came_from(tmp_path):
    from mlcore.runtime import write_sidecar

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    write_sidecar(tmp_path, {"gguf": str(gguf)})
    assert llamacpp.gguf_source(tmp_path) == gguf
