#!/usr/bin/env python3
"""Trains Orochi's small Japanese models (LlamaForCausalLM, MambaForCausalLM, JambaForCausalLM).

All models see the same token stream: the training split tokenised with the shipped
SentencePiece model, each document as [bos] + pieces + [eos], concatenated, cut into
sequences of --seq + 1 tokens, visited in one fixed (seeded) order. Same seed, same
number of tokens, same optimiser and schedule. Mamba, and the Mamba layers of Jamba, train
with the C++ selective scan of Scripts/training/fast_mamba.py (the checkpoints are stock
MambaForCausalLM / JambaForCausalLM).

Runs are resumable: every --ckpt-every steps the model, optimiser and step go to
runs/<arch>/ckpt.pt; starting again resumes there. The loss log is runs/<arch>/log.csv
(copied to Models/<arch>-loss.csv on export). When the budget is reached, the model is
exported in Hugging Face layout to Models/orochi-ja-<arch>/ (float16 safetensors).

  python Scripts/train.py --arch llama            # train (or resume) and export
  python Scripts/train.py --arch mamba --export   # export the latest checkpoint now
  python Scripts/train.py --arch mamba --bench 5  # time 5 steps, nothing saved
  python Scripts/train.py --arch jamba --params   # parameter counts of all three, then stop
"""
import argparse
import csv
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Scripts", "training"))

BOS, EOS, PAD, UNK = 1, 2, 3, 0

# ~4.7-4.8M parameters each (tied 8,000 x 256 embeddings), within 3 % of each other.
# (The 6-layer Llama / 10-layer Mamba pair of ~6.4M was too slow for the time available on
# two shared cores; both were shrunk by depth, equally in time per token.)
# Jamba (Lieber et al. 2024, arXiv:2403.19887) scaled down: its Jamba block has 8 layers,
# attention in 1 of 8 at offset 4 (the middle), an MLP after every mixer and MoE (16 experts,
# top 2) in every other layer. Here 4 layers with attention at offset 2 of a period of 4
# (M M A M): the 1:3 attention-to-Mamba ratio the paper's ablation found as good as 1:7,
# which is the densest that still leaves 3 Mamba layers at this size. No MoE (one expert,
# i.e. a plain SwiGLU MLP in every layer): 16 experts of a 4.7M model would be slivers,
# transformers' expert loop is slow on a CPU, and Orochi would need routing for nothing.
# The Mamba mixers are those of the Mamba model (d_inner 512, state 16, conv 4, dt rank 16)
# plus Jamba's RMSNorms on dt, B and C; attention as Llama's (8 heads / 4 KV) but, as in
# Jamba, without positional encoding. The MLP width (384) fills the parameter budget:
# 4,739,984 parameters, between Llama (4,802,816) and Mamba (4,676,352).
SHAPES = {
    "llama": dict(hidden_size=256, intermediate_size=640, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=4,
                  max_position_embeddings=1024),
    "mamba": dict(hidden_size=256, num_hidden_layers=6, state_size=16, expand=2,
                  conv_kernel=4),
    "jamba": dict(hidden_size=256, intermediate_size=384, num_hidden_layers=4,
                  attn_layer_period=4, attn_layer_offset=2,
                  num_attention_heads=8, num_key_value_heads=4,
                  num_experts=1, num_experts_per_tok=1, expert_layer_period=1,
                  expert_layer_offset=0,
                  mamba_d_state=16, mamba_expand=2, mamba_d_conv=4, mamba_dt_rank=16,
                  max_position_embeddings=1024),
}
ARCHS = tuple(SHAPES)


def make_config(arch, vocab):
    from transformers import JambaConfig, LlamaConfig, MambaConfig
    common = dict(vocab_size=vocab, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                  tie_word_embeddings=True)
    if arch == "llama":
        return LlamaConfig(**SHAPES["llama"], **common, rms_norm_eps=1e-5,
                           rope_theta=10000.0, hidden_act="silu",
                           attention_bias=False, mlp_bias=False)
    if arch == "jamba":
        return JambaConfig(**SHAPES["jamba"], **common, rms_norm_eps=1e-5, hidden_act="silu",
                           mamba_conv_bias=True, mamba_proj_bias=False, use_mambapy=False,
                           output_router_logits=False)
    return MambaConfig(**SHAPES["mamba"], **common, layer_norm_epsilon=1e-5,
                       use_bias=False, use_conv_bias=True, use_mambapy=False)


def make_model(arch, vocab, seed):
    from transformers import JambaForCausalLM, LlamaForCausalLM, MambaForCausalLM
    torch.manual_seed(seed)
    cfg = make_config(arch, vocab)
    cls = {"llama": LlamaForCausalLM, "mamba": MambaForCausalLM, "jamba": JambaForCausalLM}[arch]
    model = cls(cfg)
    if arch in ("llama", "jamba"):
        model.config._attn_implementation = "sdpa"
    return model


def print_params(vocab):
    """Parameter counts of the three shapes, and how far each is from the others."""
    counts = {a: sum(p.numel() for p in make_model(a, vocab, 0).parameters()) for a in ARCHS}
    for a, n in counts.items():
        worst = max(abs(n - m) / m for b, m in counts.items() if b != a)
        print("%-6s %10s parameters (at most %.1f %% from the others)" % (a, format(n, ","),
                                                                       100 * worst))
    return counts


# ---------------------------------------------------------------- data

def encode_split(sp, path, cache):
    """[bos] doc [eos] for every document (blank-line separated), as uint16."""
    if os.path.exists(cache) and os.path.getmtime(cache) >= max(
            os.path.getmtime(path), os.path.getmtime(sp_path_of(sp))):
        return np.load(cache)
    with open(path, encoding="utf-8") as f:
        docs = [d for d in f.read().split("\n\n") if d.strip()]
    ids = []
    for doc in docs:
        ids.append(BOS)
        ids.extend(sp.encode(doc))
        ids.append(EOS)
    arr = np.asarray(ids, dtype=np.uint16)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = "%s.%d.tmp.npy" % (cache, os.getpid())  # the models' runs may start together
    np.save(tmp, arr)
    os.replace(tmp, cache)
    return arr


_SP_PATH = {}


def sp_path_of(sp):
    return _SP_PATH[id(sp)]


def load_sp(path):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    _SP_PATH[id(sp)] = path
    assert (sp.bos_id(), sp.eos_id(), sp.pad_id(), sp.unk_id()) == (BOS, EOS, PAD, UNK)
    return sp


class Stream:
    """Sequences of seq+1 tokens in a fixed seeded order; epoch e uses permutation e."""

    def __init__(self, tokens, seq, batch, seed):
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.seq, self.batch, self.seed = seq, batch, seed
        self.n = (len(tokens) - 1) // seq
        self.perms = {}

    def perm(self, epoch):
        if epoch not in self.perms:
            g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            self.perms[epoch] = torch.randperm(self.n, generator=g)
        return self.perms[epoch]

    def get(self, step):
        rows = []
        for i in range(step * self.batch, (step + 1) * self.batch):
            j = int(self.perm(i // self.n)[i % self.n])
            rows.append(self.tokens[j * self.seq: j * self.seq + self.seq + 1])
        return torch.stack(rows)


# ---------------------------------------------------------------- training

def lr_at(step, total, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def eval_loss(model, valid, seq, nseq):
    model.eval()
    n = min(nseq, (len(valid) - 1) // seq)
    stride = ((len(valid) - 1) // seq) // n
    rows = torch.stack([valid[i * stride * seq: i * stride * seq + seq + 1] for i in range(n)])
    total = 0.0
    for i in range(0, n, 16):
        x = rows[i:i + 16]
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), x[:, 1:].reshape(-1),
            reduction="sum").item()
    model.train()
    return total / (n * seq)


def export(args, model, state):
    out = args.out
    os.makedirs(out, exist_ok=True)
    m = model.to(torch.float16)
    m.config.torch_dtype = "float16"
    m.save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    from transformers import GenerationConfig
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, do_sample=True,
                     temperature=0.8, top_p=0.95, max_new_tokens=64).save_pretrained(out)
    shutil.copy(args.tokenizer, os.path.join(out, "tokenizer.model"))
    tok_cfg = {
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "model_max_length": getattr(model.config, "max_position_embeddings", 1024),
        "legacy": False, "sp_model_kwargs": {}, "clean_up_tokenization_spaces": False,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "pad_token": "<pad>"}, f, indent=2)
    info = {k: state[k] for k in ("arch", "step", "tokens", "train_seconds", "params",
                                  "budget_tokens", "budget_changes", "batch", "seq", "seed", "lr",
                                  "last_train_loss", "last_valid_loss")
            if k in state}
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(info, f, indent=2)
    log = os.path.join(args.run_dir, "log.csv")
    if os.path.exists(log):
        # rows of steps redone after a resume: the last row of each step wins
        with open(log) as f:
            rows = list(csv.reader(f))
        last = {}
        for r in rows[1:]:
            if r and int(r[0]) <= state["step"]:
                last[int(r[0])] = r
        with open(os.path.join(os.path.dirname(os.path.abspath(out)),
                               "%s-loss.csv" % args.arch), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(rows[0])
            w.writerows(last[k] for k in sorted(last))
    print("exported %s (step %d, %d tokens)" % (out, state["step"], state["tokens"]),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=ARCHS, help="required, except with --params")
    ap.add_argument("--tokens", type=float, default=2e6, help="training budget in tokens")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    ap.add_argument("--ckpt-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-seqs", type=int, default=64)
    ap.add_argument("--train", default=os.path.join(ROOT, "Scripts/corpus/out/train.txt"))
    ap.add_argument("--valid", default=os.path.join(ROOT, "Scripts/corpus/out/valid.txt"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "Scripts/corpus/out/tokenizer.model"))
    ap.add_argument("--runs", default=os.path.join(ROOT, "runs"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--export", action="store_true", help="export the latest checkpoint and stop")
    ap.add_argument("--at-step", type=int, default=None,
                    help="with --export: the weights saved at this step (runs/<arch>/weights-<step>.pt)")
    ap.add_argument("--rebudget", action="store_true",
                    help="resume a checkpoint with a different --tokens (schedule follows the new end)")
    ap.add_argument("--bench", type=int, default=0, help="time this many steps, save nothing")
    ap.add_argument("--stock-scan", action="store_true",
                    help="Mamba, Jamba: keep transformers' per-token loop")
    ap.add_argument("--params", action="store_true",
                    help="print the parameter counts of all architectures and stop")
    args = ap.parse_args()
    if args.params:
        print_params(8000)
        return
    if not args.arch:
        ap.error("--arch is required")
    args.out = args.out or os.path.join(ROOT, "Models", "orochi-ja-" + args.arch)
    args.run_dir = os.path.join(args.runs, args.arch)
    os.makedirs(args.run_dir, exist_ok=True)
    torch.set_num_threads(args.threads)

    if args.arch in ("mamba", "jamba") and not args.stock_scan:
        import fast_mamba
        fast_mamba.patch()

    sp = load_sp(args.tokenizer)
    train_tok = encode_split(sp, args.train, os.path.join(args.runs, "tokens", "train.npy"))
    valid_tok = torch.from_numpy(encode_split(
        sp, args.valid, os.path.join(args.runs, "tokens", "valid.npy")).astype(np.int64))
    stream = Stream(train_tok, args.seq, args.batch, args.seed)
    tokens_per_step = args.batch * args.seq
    total_steps = int(math.ceil(args.tokens / tokens_per_step))

    model = make_model(args.arch, sp.get_piece_size(), args.seed)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "A_log" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "A_log" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    state = {"arch": args.arch, "step": 0, "tokens": 0, "train_seconds": 0.0,
             "params": params, "budget_tokens": total_steps * tokens_per_step,
             "batch": args.batch, "seq": args.seq, "seed": args.seed, "lr": args.lr}
    ckpt = os.path.join(args.run_dir, "ckpt.pt")
    if os.path.exists(ckpt) and not args.bench:
        c = torch.load(ckpt, weights_only=False)
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["opt"])
        state.update(c["state"])
        if state["budget_tokens"] != total_steps * tokens_per_step and args.rebudget:
            print("budget changed from %d to %d tokens at step %d: the cosine schedule "
                  "continues towards the new end" % (state["budget_tokens"],
                                                     total_steps * tokens_per_step,
                                                     state["step"]), flush=True)
            state.setdefault("budget_changes", []).append(
                [state["step"], state["budget_tokens"], total_steps * tokens_per_step])
            state["budget_tokens"] = total_steps * tokens_per_step
        if state["budget_tokens"] != total_steps * tokens_per_step:
            sys.exit("checkpoint was trained for a budget of %d tokens, not %d: remove %s or "
                     "pass --tokens %d" % (state["budget_tokens"], total_steps * tokens_per_step,
                                           args.run_dir, state["budget_tokens"]))
        torch.set_rng_state(c["rng"])
        print("resumed %s at step %d (%d tokens)" % (args.arch, state["step"], state["tokens"]),
              flush=True)
    if args.export:
        if args.at_step is not None:
            w = torch.load(os.path.join(args.run_dir, "weights-%d.pt" % args.at_step),
                           weights_only=False)
            model.load_state_dict(w["model"])
            state = w["state"]
        export(args, model, state)
        return

    print("%s: %d parameters, %d training tokens available, budget %d steps x %d tokens "
          "(%.2f epochs), %d threads" % (args.arch, params, len(train_tok), total_steps,
                                         tokens_per_step, total_steps * tokens_per_step
                                         / len(train_tok), args.threads), flush=True)
    log_path = os.path.join(args.run_dir, "log.csv")
    if not os.path.exists(log_path) or state["step"] == 0:
        with open(log_path, "w") as f:
            f.write("step,tokens,train_loss,valid_loss,lr,seconds,tokens_per_s\n")

    def save():
        tmp = ckpt + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt)
        # weights only, every checkpoint: lets both models be exported at the same step
        torch.save({"model": model.state_dict(), "state": dict(state)},
                   os.path.join(args.run_dir, "weights-%d.pt" % state["step"]))

    model.train()
    run_loss, run_n, t_last, tok_last = 0.0, 0, time.time(), state["tokens"]
    bench_t = []
    while state["step"] < total_steps:
        step = state["step"]
        lr = lr_at(step, total_steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.time()
        x = stream.get(step)
        # no cache: with one, Jamba's mixers ask for the final state and take the slow scan
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                                 x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.time() - t0
        if args.bench:
            bench_t.append(dt)
            print("step %d loss %.3f %.2f s %.0f tokens/s" % (step, loss.item(), dt,
                                                               tokens_per_step / dt), flush=True)
            state["step"] += 1
            if state["step"] >= args.bench:
                t = sorted(bench_t[1:] or bench_t)[len(bench_t[1:] or bench_t) // 2]
                print("%s median step %.2f s = %.0f tokens/s" % (args.arch, t, tokens_per_step / t))
                return
            continue
        state["step"] += 1
        state["tokens"] += tokens_per_step
        state["train_seconds"] += dt
        run_loss += loss.item()
        run_n += 1
        last = state["step"] == total_steps
        if state["step"] % 10 == 0 or last:
            vloss = ""
            if state["step"] % args.eval_every == 0 or last:
                vloss = eval_loss(model, valid_tok, args.seq, args.eval_seqs)
                state["last_valid_loss"] = vloss
                vloss = "%.4f" % vloss
            now = time.time()
            tps = (state["tokens"] - tok_last) / (now - t_last)
            state["last_train_loss"] = run_loss / run_n
            with open(log_path, "a") as f:
                f.write("%d,%d,%.4f,%s,%.6f,%.1f,%.0f\n" % (
                    state["step"], state["tokens"], run_loss / run_n, vloss, lr,
                    state["train_seconds"], tps))
            print("%s step %d/%d tokens %d loss %.4f %s lr %.2e %.0f tok/s" % (
                args.arch, state["step"], total_steps, state["tokens"], run_loss / run_n,
                ("valid " + vloss) if vloss else "", lr, tps), flush=True)
            run_loss, run_n, t_last, tok_last = 0.0, 0, now, state["tokens"]
        if state["step"] % args.ckpt_every == 0 or last:
            save()
    export(args, model, state)


if __name__ == "__main__":
    main()
