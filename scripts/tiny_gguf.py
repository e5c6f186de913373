#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model with random weights, for testing against a real
llama.cpp llama-server without downloading weights.

Usage: tiny_gguf.py OUT.gguf   (needs the `gguf` package; scripts/llama-server.sh pins it)

The model: 2 layers, 64-wide embeddings, 4 attention heads, a SentencePiece-style ("llama")
vocabulary of 301 tokens. Its text is garbage, which is all a latency test needs; generate a
known number of tokens with `ignore_eos` and `max_tokens`.

The vocabulary is ASCII only, so every generated token is valid UTF-8 on its own and the server
streams one event per token: byte tokens <0x00>..<0x7F> (the SPM tokenizer falls back to them for
characters that have no piece, e.g. the newline of the chat template), one piece per printable
character, and a few word pieces with every prefix (SPM only merges pairs whose result is itself a
piece). Input outside ASCII cannot be tokenized by this vocabulary.

Keys and tensor names follow the llama loader of the llama.cpp that llama-cpp-python 0.3.36
vendors (src/models/llama.cpp, src/llama-model.cpp, src/llama-vocab.cpp): general.architecture,
llama.{context_length, embedding_length, block_count, feed_forward_length,
attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon,
rope.dimension_count}, tokenizer.ggml.{model, tokens, scores, token_type, bos/eos/unk ids}, and
per layer attn_norm, attn_q/k/v, attn_output, ffn_norm, ffn_gate/up/down; output.weight is
optional (tied to token_embd).
"""

import sys

import numpy as np
import gguf

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 4
N_LAYER = 2
N_FF = 128
N_CTX = 2048
SEED = 20240601

WORDS = [
    "the", "and", "probe", "token", "count", "to", "eight", "one", "two", "three", "four",
    "five", "six", "seven", "hello", "world", "server", "model", "answer", "say", "is", "of",
]

# A minimal chat template (jinja), so /v1/chat/completions renders prompts the same way on every
# llama.cpp version rather than through a built-in fallback.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def vocabulary():
    tokens, scores, types = [], [], []

    def add(piece, score, kind):
        tokens.append(piece)
        scores.append(float(score))
        types.append(kind)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    add("<s>", 0.0, gguf.TokenType.CONTROL)
    add("</s>", 0.0, gguf.TokenType.CONTROL)
    for b in range(0x80):
        add(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE)
    # "\u2581" is SentencePiece's visible space.
    add("\u2581", -1.0, gguf.TokenType.NORMAL)
    for c in range(0x21, 0x7F):
        add(chr(c), -1.0, gguf.TokenType.NORMAL)
    seen = set(tokens)
    for w in WORDS:
        piece = "\u2581" + w
        for end in range(2, len(piece) + 1):
            p = piece[:end]
            if p not in seen:
                seen.add(p)
                add(p, float(end), gguf.TokenType.NORMAL)
    return tokens, scores, types


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_gguf.py OUT.gguf")
    out = sys.argv[1]
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD
    rng = np.random.default_rng(SEED)

    def weight(*shape):
        # numpy shape is (rows, cols) = ggml's {cols, rows}: the writer reverses dimensions.
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = gguf.GGUFWriter(out, "llama")
    w.add_name("inferprobe-tiny-llama")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    w.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", weight(N_HEAD * head_dim, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_k.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_v.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_output.weight", weight(N_EMBD, N_HEAD * head_dim))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weight(N_EMBD, N_FF))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
