#!/usr/bin/env python3
"""Writes small GGUF seeds for the `gguf` fuzz target (Fuzz/Corpus/gguf), with gguf-py:

  tok-llama.gguf   a one-layer Llama whose tokenizer is `tokenizer.ggml.model` = "llama"
                   (SentencePiece's tokens, scores and token types: <unk> <s> </s>, 16 byte
                   tokens <0x00>..<0x0F>, 29 pieces)
  tok-t5.gguf      the same model with model "t5" (llama.cpp's unigram: byte fallback needs all 256
                   byte tokens), add_space_prefix and
                   remove_extra_whitespaces; no tokenizer.ggml.precompiled_charsmap (gguf-py
                   writes no empty array, and a real map is ~240 KB: the sentencepiece seeds have one)
  mamba.gguf       architecture `mamba` (GGUFModels.mamba): hidden 32, inner 64, state 4, conv 4,
                   2 layers, tied embeddings, the "llama" tokenizer
  jamba.gguf       architecture `jamba` (GGUFModels.jamba): layer 0 Mamba with a dense FFN,
                   layer 1 attention with 2 experts (stacked *_exps tensors)

Every seed is a few tens of KB at most (libFuzzer's -max_len defaults to the largest seed).
The other two seeds (tiny-llama.gguf, quants.gguf) are copies of test fixtures.

Also the seeds of `quant-blocks` (Fuzz/Corpus/quant-blocks, FuzzQuantBlocks: a type byte, a shape
byte, then the payload): for each of the ten formats, <type>-blocks holds real blocks (the first
ones of the tensor q.<TYPE> of the fixture quants.gguf: 2 rows of 4 blocks, of 1 super-block for
the K-quants, 5 tokens), and <type>-floats a payload of float32 values in ±2 for the quantizer
(2 rows of 1 block, 2 tokens).

    .venv/bin/python Fuzz/Scripts/make_gguf_seeds.py      # from the repository root
"""
import os

import numpy as np

import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Fuzz/Corpus/gguf")
rng = np.random.default_rng(11)

N, U, C, B = gguf.TokenType.NORMAL, gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.BYTE
PIECES = ["▁", "▁the", "▁a", "e", "t", "o", "▁H", "ello", "▁world", "l", "d", "r", "s", "▁1", "2", "3", ",",
          "▁日本", "語", "▁世界", "の", "文", "。", "▁ファイル", "を", "開く", "▁には", "▁" + "ab", "ab", "c"]


def vocabulary(byte_tokens):
    """(tokens, scores, types): <unk> <s> </s>, the first `byte_tokens` byte tokens, the pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(byte_tokens)] + PIECES
    scores = [0.0] * (3 + byte_tokens) + [-1.0 - 0.25 * i for i in range(len(PIECES))]
    return tokens, scores, [U, C, C] + [B] * byte_tokens + [N] * len(PIECES)


V = len(vocabulary(16)[0])


def weights(*shape, scale=0.1):
    """Random weights: matrices in F16 (half the bytes), vectors in F32."""
    return (rng.standard_normal(shape) * scale).astype(np.float16 if len(shape) > 1 else np.float32)


def tokenizer(w, model, t5=False):
    # Model t5 (a SentencePiece unigram model) with byte fallback needs all 256 byte tokens.
    tokens, scores, types = vocabulary(256 if t5 else 16)
    w.add_tokenizer_model(model)
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if t5:
        w.add_add_space_prefix(True)
        w.add_remove_extra_whitespaces(True)
        w.add_add_bos_token(False)
        w.add_add_eos_token(True)
    else:
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)


def llama(name, model, t5=False):
    D, F, H, KV, HD = 16, 32, 2, 1, 8
    V = len(vocabulary(256 if t5 else 16)[0])
    w = gguf.GGUFWriter(os.path.join(OUT, name), "llama")
    w.add_context_length(32)
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_block_count(1)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(V)
    tokenizer(w, model, t5)
    w.add_tensor("token_embd.weight", weights(V, D))
    w.add_tensor("output_norm.weight", np.ones(D, np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(D, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(D, np.float32))
    w.add_tensor("blk.0.attn_q.weight", weights(H * HD, D))
    w.add_tensor("blk.0.attn_k.weight", weights(KV * HD, D))
    w.add_tensor("blk.0.attn_v.weight", weights(KV * HD, D))
    w.add_tensor("blk.0.attn_output.weight", weights(D, H * HD))
    w.add_tensor("blk.0.ffn_gate.weight", weights(F, D))
    w.add_tensor("blk.0.ffn_up.weight", weights(F, D))
    w.add_tensor("blk.0.ffn_down.weight", weights(D, F))
    finish(w)


# Mamba's sizes: hidden 32, inner 64, state 4, conv kernel 4, Δ rank 2.
D, E, S, K, R = 32, 64, 4, 4, 2


def mamba_mixer(w, l, jamba=False):
    p = "blk.%d." % l
    w.add_tensor(p + "ssm_in.weight", weights(2 * E, D))
    w.add_tensor(p + "ssm_conv1d.weight", weights(E, K).astype(np.float32))   # HF's [E, 1, K] without the 1, as the converter writes it
    w.add_tensor(p + "ssm_conv1d.bias", weights(E))
    w.add_tensor(p + "ssm_x.weight", weights(R + 2 * S, E))
    w.add_tensor(p + "ssm_dt.weight", weights(E, R))
    w.add_tensor(p + "ssm_dt.bias", weights(E))
    w.add_tensor(p + "ssm_a", -np.tile(np.arange(1, S + 1, dtype=np.float32), (E, 1)))   # −exp(A_log)
    w.add_tensor(p + "ssm_d", np.ones(E, np.float32))
    w.add_tensor(p + "ssm_out.weight", weights(D, E))
    if jamba:
        w.add_tensor(p + "ssm_dt_norm.weight", np.ones(R, np.float32))
        w.add_tensor(p + "ssm_b_norm.weight", np.ones(S, np.float32))
        w.add_tensor(p + "ssm_c_norm.weight", np.ones(S, np.float32))


def ssm_metadata(w, arch):
    w.add_uint32(arch + ".ssm.conv_kernel", K)
    w.add_uint32(arch + ".ssm.inner_size", E)
    w.add_uint32(arch + ".ssm.state_size", S)
    w.add_uint32(arch + ".ssm.time_step_rank", R)


def mamba():
    w = gguf.GGUFWriter(os.path.join(OUT, "mamba.gguf"), "mamba")
    w.add_context_length(1 << 20)
    w.add_embedding_length(D)
    w.add_feed_forward_length(0)
    w.add_head_count(0)
    w.add_block_count(2)
    ssm_metadata(w, "mamba")
    w.add_layer_norm_rms_eps(1e-5)
    w.add_bool("mamba.ssm.dt_b_c_rms", False)
    w.add_vocab_size(V)
    tokenizer(w, "llama")
    w.add_tensor("token_embd.weight", weights(V, D))   # no output.weight: tied
    w.add_tensor("output_norm.weight", np.ones(D, np.float32))
    for l in range(2):
        w.add_tensor("blk.%d.attn_norm.weight" % l, np.ones(D, np.float32))
        mamba_mixer(w, l)
    finish(w)


def jamba():
    F, H, KV, HD, X = 32, 4, 2, 8, 2
    w = gguf.GGUFWriter(os.path.join(OUT, "jamba.gguf"), "jamba")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_key_value("jamba.attention.head_count_kv", [0, KV], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.INT32)
    ssm_metadata(w, "jamba")
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(X)
    w.add_expert_used_count(1)
    w.add_vocab_size(V)
    tokenizer(w, "llama")
    w.add_tensor("token_embd.weight", weights(V, D))
    w.add_tensor("output_norm.weight", np.ones(D, np.float32))
    w.add_tensor("output.weight", weights(V, D))
    for l in range(2):
        w.add_tensor("blk.%d.attn_norm.weight" % l, np.ones(D, np.float32))
        w.add_tensor("blk.%d.ffn_norm.weight" % l, np.ones(D, np.float32))
    # Layer 0: Mamba, dense feed-forward.
    mamba_mixer(w, 0, jamba=True)
    w.add_tensor("blk.0.ffn_gate.weight", weights(F, D))
    w.add_tensor("blk.0.ffn_up.weight", weights(F, D))
    w.add_tensor("blk.0.ffn_down.weight", weights(D, F))
    # Layer 1: attention, experts stacked [X, F, D] / [X, D, F].
    w.add_tensor("blk.1.attn_q.weight", weights(H * HD, D))
    w.add_tensor("blk.1.attn_k.weight", weights(KV * HD, D))
    w.add_tensor("blk.1.attn_v.weight", weights(KV * HD, D))
    w.add_tensor("blk.1.attn_output.weight", weights(D, H * HD))
    w.add_tensor("blk.1.ffn_gate_inp.weight", weights(X, D))
    w.add_tensor("blk.1.ffn_gate_exps.weight", weights(X, F, D))
    w.add_tensor("blk.1.ffn_up_exps.weight", weights(X, F, D))
    w.add_tensor("blk.1.ffn_down_exps.weight", weights(X, D, F))
    finish(w)


# FuzzQuantBlocks' order of the formats (its first byte, modulo 10).
QUANT_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def quant_blocks():
    out = os.path.join(ROOT, "Fuzz/Corpus/quant-blocks")
    os.makedirs(out, exist_ok=True)
    reader = gguf.GGUFReader(os.path.join(ROOT, "Tests/OrochiTests/Fixtures/gguf/quants.gguf"))
    data = {t.name: bytes(t.data.tobytes()) for t in reader.tensors}
    for i, name in enumerate(QUANT_TYPES):
        k = name.endswith("_K")
        block_weights, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]]
        # shape byte: bits 0-1 rows − 1, bits 2-3 blocks per row − 1, bits 4-6 tokens − 1
        blocks_per_row = 1 if k else 4
        shape = 1 | (blocks_per_row - 1) << 2 | 4 << 4
        with open(os.path.join(out, name.lower() + "-blocks"), "wb") as f:
            f.write(bytes([i, shape]) + data["q." + name][:2 * blocks_per_row * block_bytes])
        count = 2 * block_weights
        floats = (2 * np.sin(np.arange(count, dtype=np.float32) * 0.37)).astype("<f4").tobytes()
        with open(os.path.join(out, name.lower() + "-floats"), "wb") as f:
            f.write(bytes([i, 1 | 1 << 4]) + floats)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    llama("tok-llama.gguf", "llama")
    llama("tok-t5.gguf", "t5", t5=True)
    mamba()
    jamba()
    quant_blocks()
    for f in ["tok-llama.gguf", "tok-t5.gguf", "mamba.gguf", "jamba.gguf"]:
        size = os.path.getsize(os.path.join(OUT, f))
        assert size <= 64 * 1024, (f, size)
        print("%-16s %6d bytes" % (f, size))
