"""A tiny offline model folder for the Dynamo mocker: tokenizer.json, tokenizer_config.json
(with a chat template) and config.json. No weights, no network.

The tokenizer is character-level: every token is exactly one Unicode character, so
``decode(encode(text)) == text`` for any text made of covered characters, and any sequence
of token ids the mocker emits decodes to text that encodes back to the same number of
tokens (clients such as aiperf count the same tokens as the server). The vocabulary holds
:data:`VOCAB_SIZE` tokens (printable ASCII, whitespace, Latin-1, punctuation, then CJK
ideographs) because the mocker emits ids across a full-size vocabulary.

The folder is built once per content version and cached under
``~/.cache/recipe-harness/tiny-model-<hash>`` (``$RECIPE_HARNESS_CACHE`` overrides the
parent); builders racing each other each write a private temporary folder and rename it
into place, so a reader never sees a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

VOCAB_SIZE = 32000
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
UNK, BOS, EOS = SPECIAL_TOKENS
# Roles are rendered as plain text so the prompt's token count is the text's length plus a few.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json", "generation_config.json")
_VERSION = "1"


def _characters() -> list[str]:
    """The vocabulary's characters, in id order after the special tokens."""
    chars: list[str] = ["\n", "\t", "\r"]
    ranges = [
        (0x20, 0x7E),      # printable ASCII
        (0xA0, 0x17F),     # Latin-1 supplement, Latin extended-A
        (0x2010, 0x2027),  # general punctuation (dashes, quotes, ellipsis)
        (0x4E00, 0x9FFF),  # CJK unified ideographs
        (0xAC00, 0xD7A3),  # Hangul syllables
    ]
    for lo, hi in ranges:
        chars.extend(chr(c) for c in range(lo, hi + 1))
    wanted = VOCAB_SIZE - len(SPECIAL_TOKENS)
    if len(chars) < wanted:  # pragma: no cover - the ranges above hold more than enough
        raise RuntimeError("tiny model: not enough characters for the vocabulary")
    return chars[:wanted]


def _tokenizer_json() -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in _characters():
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok.to_str(pretty=False)


def _config_json() -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 32768,
        "torch_dtype": "float16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": True,
    }


def _tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 32768,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                     "normalized": False, "single_word": False}
            for i, t in enumerate(SPECIAL_TOKENS)
        },
    }


def _contents() -> dict[str, str]:
    return {
        "tokenizer.json": _tokenizer_json(),
        "tokenizer_config.json": json.dumps(_tokenizer_config(), indent=2),
        "config.json": json.dumps(_config_json(), indent=2),
        "special_tokens_map.json": json.dumps({"bos_token": BOS, "eos_token": EOS, "unk_token": UNK}, indent=2),
        "generation_config.json": json.dumps({"bos_token_id": 1, "eos_token_id": 2}, indent=2),
    }


def cache_root() -> Path:
    env = os.environ.get("RECIPE_HARNESS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "recipe-harness"


def _fingerprint() -> str:
    h = hashlib.sha256(_VERSION.encode())
    h.update(str(VOCAB_SIZE).encode())
    h.update(CHAT_TEMPLATE.encode())
    h.update(json.dumps(_config_json(), sort_keys=True).encode())
    return h.hexdigest()[:12]


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def tiny_model_dir(cache: Path | None = None) -> Path:
    """The cached tiny model folder, built on first use (atomic, safe for concurrent builders)."""
    parent = cache or cache_root()
    folder = parent / f"tiny-model-{_fingerprint()}"
    if _complete(folder):
        return folder
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=parent))
    tmp.chmod(0o755)
    try:
        for name, text in _contents().items():
            (tmp / name).write_text(text, encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not _complete(folder):  # another builder won the race with a broken folder: replace it
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
