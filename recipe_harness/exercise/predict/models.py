"""What the static memory rule knows about a model: the bytes of its weights and of its KV cache per token.

Figures come from each repository's ``config.json`` on the Hugging Face Hub (layers, KV heads, head
size, MLA ranks; the same files AIConfigurator bundles in ``aiconfigurator_core/model_configs``)
and the parameter count on its model card, times the bytes a parameter takes in the checkpoint
(BF16 2, FP8 1, FP4 0.5). Each is a *lower bound*: scales, embeddings kept in BF16 and the
engine's activations and CUDA graphs only add to it, so a recipe the rule rejects cannot run.

:data:`ALIASES` names the bundled model the performance model uses for a checkpoint it does not
bundle but whose architecture is the same (the prediction says so).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    repo: str
    params_b: float              # parameters, billions (model card)
    weight_bytes: float          # bytes per parameter in the checkpoint (lower bound)
    layers: int
    kv_heads: int                # key/value heads (GQA); ignored with MLA
    head_dim: int
    mla_dim: int = 0             # MLA: kv_lora_rank + qk_rope_head_dim, one latent per token and layer
    kv_bytes: float = 2.0        # KV cache element, the engines' default for the checkpoint

    @property
    def weights_bytes(self) -> float:
        return self.params_b * 1e9 * self.weight_bytes

    def kv_bytes_per_token(self, tp: int = 1, pp: int = 1) -> float:
        """KV cache bytes one token takes on one GPU of a TP x PP group: GQA heads split over TP (a head is
        never split: with more GPUs than heads each GPU keeps one), MLA latents replicated on every TP rank."""
        layers = -(-self.layers // max(pp, 1))
        if self.mla_dim:
            return layers * self.mla_dim * self.kv_bytes
        heads = max(1, -(-self.kv_heads // max(tp, 1)))
        return 2 * layers * heads * self.head_dim * self.kv_bytes


_SPECS = (
    ModelSpec("Qwen/Qwen3-0.6B", 0.6, 2, 28, 8, 128),
    ModelSpec("Qwen/Qwen3-8B", 8.2, 2, 36, 8, 128),
    ModelSpec("Qwen/Qwen3-32B", 32.8, 2, 64, 8, 128),
    ModelSpec("Qwen/Qwen3-32B-FP8", 32.8, 1, 64, 8, 128),
    ModelSpec("Qwen/Qwen3-30B-A3B", 30.5, 2, 48, 4, 128),
    ModelSpec("Qwen/Qwen3-235B-A22B", 235.0, 2, 94, 4, 128),
    ModelSpec("Qwen/Qwen3-235B-A22B-FP8", 235.0, 1, 94, 4, 128),
    ModelSpec("meta-llama/Llama-3.1-8B-Instruct", 8.0, 2, 32, 8, 128),
    ModelSpec("meta-llama/Llama-3.1-70B-Instruct", 70.6, 2, 80, 8, 128),
    ModelSpec("meta-llama/Llama-3.3-70B-Instruct", 70.6, 2, 80, 8, 128),
    ModelSpec("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", 70.6, 1, 80, 8, 128),
    ModelSpec("nvidia/Llama-3.1-70B-Instruct-FP8", 70.6, 1, 80, 8, 128),
    ModelSpec("deepseek-ai/DeepSeek-R1", 671.0, 1, 61, 128, 128, mla_dim=512 + 64),
    ModelSpec("deepseek-ai/DeepSeek-V3", 671.0, 1, 61, 128, 128, mla_dim=512 + 64),
    ModelSpec("nvidia/DeepSeek-R1-FP4", 671.0, 0.5, 61, 128, 128, mla_dim=512 + 64),
    ModelSpec("openai/gpt-oss-120b", 116.8, 0.5, 36, 8, 64),
    ModelSpec("openai/gpt-oss-20b", 20.9, 0.5, 24, 8, 64),
)
MODELS: dict[str, ModelSpec] = {s.repo.lower(): s for s in _SPECS}

# checkpoint -> (bundled model of the same architecture, why)
ALIASES: dict[str, tuple[str, str]] = {
    "redhatai/llama-3.3-70b-instruct-fp8-dynamic": (
        "nvidia/Llama-3.1-70B-Instruct-FP8", "Llama 3.3 70B has Llama 3.1 70B's architecture; both FP8 weights"),
    "meta-llama/llama-3.3-70b-instruct": (
        "meta-llama/Meta-Llama-3.1-70B", "Llama 3.3 70B has Llama 3.1 70B's architecture"),
    "meta-llama/llama-3.1-70b-instruct": ("meta-llama/Meta-Llama-3.1-70B", "the instruct tune of the same weights"),
    "meta-llama/llama-3.1-8b-instruct": ("meta-llama/Meta-Llama-3.1-8B", "the instruct tune of the same weights"),
    "nvidia/deepseek-r1-fp4": (
        "nvidia/DeepSeek-V3.1-NVFP4", "DeepSeek-R1 has DeepSeek-V3's architecture; both NVFP4 checkpoints by NVIDIA"),
}


def spec_of(repo: str | None) -> ModelSpec | None:
    """The spec of a Hugging Face repo id, or of a path that ends in one (``/models/Qwen/Qwen3-32B``)."""
    if not repo:
        return None
    key = repo.strip().rstrip("/").lower()
    if key in MODELS:
        return MODELS[key]
    parts = key.split("/")
    return MODELS.get("/".join(parts[-2:])) if len(parts) >= 2 else None


def repo_of(model: str | None) -> str | None:
    """The repo id a worker loads: the model argument itself, or the last two parts of a local path."""
    if not model:
        return None
    text = model.strip().rstrip("/")
    if text.startswith("/"):
        parts = [p for p in text.split("/") if p and not p.startswith("models--")]
        return "/".join(parts[-2:]) if len(parts) >= 2 else None
    return text
