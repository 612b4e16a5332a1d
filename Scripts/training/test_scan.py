#!/usr/bin/env python3
"""Checks the C++ selective scan against transformers' stock Mamba code.

1. The scan function alone, on random inputs: outputs and the gradients of all inputs.
2. A whole small MambaForCausalLM: logits and the gradients of every parameter, with
   the fast scan patched in versus the stock per-token loop.
3. The same for a small JambaForCausalLM (4 layers, attention at layer 2 as in
   train.py's shape, no experts), against transformers' stock Jamba code: its Mamba
   layers' RMSNorms on delta, B and C and dt_proj run in PyTorch in both cases, only
   the scan differs.
Float64 (tolerance 1e-6 relative: the stock code itself casts B and delta*B*u to
float32, and JambaRMSNorm computes in float32) and float32 (1e-4). Errors are relative
to the largest magnitude of the reference tensor. Exit status 1 on a mismatch.
Also prints the speed of one training step of a layer with each scan."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fast_mamba  # noqa: E402

FAIL = []


def close(name, a, b, tol):
    err = ((a - b).abs().max() / (b.abs().max() + 1e-30)).item()
    ok = err <= tol
    print("  %-28s max rel err %.2e %s" % (name, err, "ok" if ok else "FAIL (tol %g)" % tol))
    if not ok:
        FAIL.append(name)


def test_function(dtype, tol, bs=3, D=24, N=16, L=37):
    print("scan function, %s:" % dtype)
    g = torch.Generator().manual_seed(0)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
    u, dt, z = mk(bs, D, L), mk(bs, D, L) * 0.5, mk(bs, D, L)
    A = -torch.exp(mk(D, N) * 0.5)
    B, C, Dp, bias = mk(bs, N, L), mk(bs, N, L), mk(D), mk(D) * 0.1
    inputs = [u, dt, A, B, C, Dp, z, bias]
    stock = fast_mamba.stock_scan()
    outs, grads = [], []
    w = mk(bs, D, L)
    for fn in (stock, fast_mamba.selective_scan):
        xs = [x.clone().requires_grad_(True) for x in inputs]
        y = fn(xs[0], xs[1], xs[2], xs[3], xs[4], D=xs[5], z=xs[6], delta_bias=xs[7],
               delta_softplus=True)
        (y * w).sum().backward()
        outs.append(y.detach())
        grads.append([x.grad for x in xs])
    close("output", outs[1], outs[0], tol)
    for name, a, b in zip("u dt A B C D z delta_bias".split(), grads[1], grads[0]):
        close("grad " + name, a, b, tol)


def small_model(arch, dtype):
    from transformers import JambaConfig, JambaForCausalLM, MambaConfig, MambaForCausalLM
    torch.manual_seed(0)
    if arch == "jamba":
        cfg = JambaConfig(vocab_size=97, hidden_size=32, intermediate_size=48,
                          num_hidden_layers=4, attn_layer_period=4, attn_layer_offset=2,
                          num_attention_heads=4, num_key_value_heads=2, num_experts=1,
                          num_experts_per_tok=1, expert_layer_period=1, expert_layer_offset=0,
                          mamba_d_state=8, mamba_expand=2, mamba_d_conv=4,
                          max_position_embeddings=64, tie_word_embeddings=True)
        model = JambaForCausalLM(cfg)
        model.config._attn_implementation = "eager"
        assert [type(l).__name__ for l in model.model.layers] == [
            "JambaMambaDecoderLayer", "JambaMambaDecoderLayer",
            "JambaAttentionDecoderLayer", "JambaMambaDecoderLayer"]
        return model.to(dtype)
    cfg = MambaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, state_size=8,
                      expand=2, conv_kernel=4, tie_word_embeddings=True)
    return MambaForCausalLM(cfg).to(dtype)


def run_model(model, ids):
    model.zero_grad()
    out = model(input_ids=ids, labels=ids, use_cache=False)  # as train.py: no cache, no state
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_model(arch, dtype, tol):
    print("%s, %s:" % ("JambaForCausalLM" if arch == "jamba" else "MambaForCausalLM", dtype))
    model = small_model(arch, dtype)
    model.train()
    ids = torch.randint(0, 97, (2, 40), generator=torch.Generator().manual_seed(1))
    fast_mamba.unpatch()
    ref_logits, ref_grads = run_model(model, ids)
    fast_mamba.patch()
    calls = fast_mamba.calls
    logits, grads = run_model(model, ids)
    mixers = sum(1 for m in model.modules() if type(m).__name__ in ("MambaMixer", "JambaMambaMixer"))
    ran = fast_mamba.calls - calls
    print("  C++ scan ran %d times for %d Mamba layers %s" % (ran, mixers, "ok" if ran == mixers else "FAIL"))
    if ran != mixers:
        FAIL.append("%s: scan not patched in" % arch)
    close("logits", logits, ref_logits, tol)
    worst = max(grads, key=lambda n: ((grads[n] - ref_grads[n]).abs().max()
                                      / (ref_grads[n].abs().max() + 1e-30)).item())
    for n in sorted(grads):
        if ("mixer" in n or ".mamba." in n) and "layers.0." in n or n == worst:
            close("grad " + n, grads[n], ref_grads[n], tol)
    bad = [n for n in grads if not torch.allclose(grads[n], ref_grads[n], rtol=0,
                                                  atol=tol * ref_grads[n].abs().max().item())]
    if bad:
        print("  mismatching gradients:", bad)
        FAIL.extend(bad)


def bench():
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer
    cfg = MambaConfig(hidden_size=256, state_size=16, expand=2, conv_kernel=4)
    mixer = MambaMixer(cfg, 0)
    x = torch.randn(4, 128, 256)
    print("one mixer layer, batch 4 x 128 tokens, forward + backward:")
    for name, on in (("stock loop", False), ("C++ scan", True)):
        fast_mamba.patch() if on else fast_mamba.unpatch()
        times = []
        for _ in range(3):
            t = time.time()
            mixer(x.requires_grad_(True)).sum().backward()
            times.append(time.time() - t)
        print("  %-10s %.3f s  (%.0f tokens/s)" % (name, min(times), 512 / min(times)))


if __name__ == "__main__":
    fast_mamba.patch()
    test_function(torch.float64, 1e-6)
    test_function(torch.float32, 1e-4)
    for arch in ("mamba", "jamba"):
        test_model(arch, torch.float64, 1e-6)
        test_model(arch, torch.float32, 1e-4)
    if "--bench" in sys.argv:
        bench()
    print("FAILED: %s" % FAIL if FAIL else "all scan checks passed")
    sys.exit(1 if FAIL else 0)
