"""Write a tiny random-weight llama GGUF that a real llama-server can load and generate from.

For tests only: the output is gibberish. Not a general model converter.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_CTX_TRAIN = 4096
SEED = 20240607

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_SPECIALS = [
    ("<unk>", gguf.TokenType.UNKNOWN),
    ("<s>", gguf.TokenType.CONTROL),
    ("</s>", gguf.TokenType.CONTROL),
]
_CHAT_SPECIALS = ["<|im_start|>", "<|im_end|>"]
_WORDS = [
    "the", "and", "of", "to", "is", "in", "it", "you", "that",
    "hello", "world", "user", "assistant", "system", "cache", "token", "test",
]  # fmt: skip
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """SPM ('llama') vocabulary: specials, 256 byte-fallback tokens, then a few normal pieces."""
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []

    def add(piece: str, score: float, kind: gguf.TokenType) -> None:
        tokens.append(piece)
        scores.append(score)
        types.append(int(kind))

    for piece, kind in _SPECIALS:
        add(piece, 0.0, kind)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0.0, gguf.TokenType.BYTE)
    for piece in _CHAT_SPECIALS:
        add(piece, 0.0, gguf.TokenType.CONTROL)
    # SPM only merges two pieces into one that is in the vocabulary, so a word needs every
    # prefix to be reachable; longer pieces score higher so words win over letters.
    words = ["\u2581" + w[:end] for w in _WORDS for end in range(1, len(w) + 1)]
    pieces = ["\u2581", *_LETTERS, *("\u2581" + c for c in _LETTERS), *words]
    normal = list(dict.fromkeys(pieces))  # llama.cpp aborts on duplicate pieces
    for rank, piece in enumerate(normal):
        add(piece, float(len(piece)) - rank * 1e-3, gguf.TokenType.NORMAL)
    return tokens, scores, types


def write_tiny_gguf(path: Path) -> Path:
    """Write the tiny model to `path` (about 0.5 MB, reproducible) and return `path`."""
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD
    rng = np.random.default_rng(SEED)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_eot_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    # numpy shapes are (rows, cols); GGUF stores them reversed, which is what llama.cpp expects.
    writer.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones(N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(N_HEAD * head_dim, N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(N_EMBD, N_HEAD * head_dim))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones(N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", ones(N_EMBD))
    writer.add_tensor("output.weight", weight(n_vocab, N_EMBD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
