"""A fast CPU selective scan for training transformers' MambaForCausalLM and JambaForCausalLM.

Without mamba-ssm's CUDA kernels, transformers' MambaMixer runs the scan as a Python
loop over tokens, whose backward is far too slow to train on a CPU. This module builds
a small C++ extension (selective_scan.cpp, compiled with g++ on first use into
Scripts/out/ext/, no ninja needed), wraps it in an autograd.Function and patches it in
as `mamba_selective_scan` of transformers' modeling_mamba and modeling_jamba (the two
modules carry identical copies of that function; JambaMambaMixer calls it after its
RMSNorms on Δ, B and C and its dt_proj, which stay in PyTorch). The models stay stock
MambaForCausalLM / JambaForCausalLM with stock parameter names; only the scan is
replaced, and only for full-sequence calls without a returned state (training,
evaluation). Generation with a cache keeps the stock code. test_scan.py checks outputs
and gradients against it.
"""
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sysconfig

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "selective_scan.cpp")
BUILD = os.path.join(os.path.dirname(HERE), "out", "ext")

_ext = None


def _build():
    from torch.utils import cpp_extension
    with open(SRC, "rb") as f:
        digest = hashlib.sha1(f.read() + torch.__version__.encode() + open(__file__, "rb").read()).hexdigest()[:12]
    name = "orochi_scan_" + digest
    so = os.path.join(BUILD, name + ".so")
    if not os.path.exists(so):
        os.makedirs(BUILD, exist_ok=True)
        abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
        cmd = ["g++", "-O3", "-march=native", "-ffast-math", "-fopenmp",
               "-shared", "-fPIC", "-std=c++20",
               "-DTORCH_EXTENSION_NAME=" + name, "-DTORCH_API_INCLUDE_EXTENSION_H",
               "-D_GLIBCXX_USE_CXX11_ABI=%d" % abi,
               "-I" + sysconfig.get_paths()["include"]]
        cmd += ["-isystem" + p for p in cpp_extension.include_paths()]
        cmd += [SRC, "-o", so + ".tmp"]
        for p in cpp_extension.library_paths():
            cmd += ["-L" + p, "-Wl,-rpath," + p]
        cmd += ["-lc10", "-ltorch", "-ltorch_cpu", "-ltorch_python", "-lmvec"]
        subprocess.run(cmd, check=True)
        os.replace(so + ".tmp", so)
    loader = importlib.machinery.ExtensionFileLoader(name, so)
    spec = importlib.util.spec_from_file_location(name, so, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def ext():
    global _ext
    if _ext is None:
        _ext = _build()
    return _ext


class SelectiveScanFn(torch.autograd.Function):
    """y = scan(u, delta, A, B, C) in (batch, L, D) / (batch, L, N) layout."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        u, delta, A, B, C = (x.contiguous() for x in (u, delta, A, B, C))
        ctx.save_for_backward(u, delta, A, B, C)
        return ext().forward(u, delta, A, B, C)[0]

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C = ctx.saved_tensors
        du, ddelta, dA, dB, dC = ext().backward(u, delta, A, B, C, dy.contiguous())
        return du, ddelta, dA, dB, dC


calls = 0  # how many times the C++ scan ran (test_scan.py checks that the patch took effect)


def selective_scan(hidden_states, dt, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False):
    """Same arguments and result as transformers' mamba_selective_scan
    (hidden_states, dt, z: (batch, D, L); B, C: (batch, N, L); A: (D, N))."""
    global calls
    calls += 1
    dtype = hidden_states.dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    u = hidden_states.to(work).transpose(1, 2)
    y = SelectiveScanFn.apply(u, dt.to(work).transpose(1, 2), A.to(work),
                              B.to(work).transpose(1, 2), C.to(work).transpose(1, 2))
    y = y.transpose(1, 2).to(dtype)
    if D is not None:
        y = y + hidden_states * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return y


# The modules whose mamba_selective_scan is replaced, and their stock functions once patched.
MODULES = ("transformers.models.mamba.modeling_mamba", "transformers.models.jamba.modeling_jamba")
_stock = {}


def _patched(stock):
    def patched(hidden_states, dt, A, B, C, D=None, z=None, delta_bias=None,
                delta_softplus=False, return_last_state=False, **kwargs):
        if return_last_state or hidden_states.device.type != "cpu":
            return stock(hidden_states, dt, A, B, C, D=D, z=z, delta_bias=delta_bias,
                         delta_softplus=delta_softplus,
                         return_last_state=return_last_state, **kwargs)
        return selective_scan(hidden_states, dt, A, B, C, D=D, z=z, delta_bias=delta_bias,
                              delta_softplus=delta_softplus)
    return patched


def patch():
    """Replaces the slow scan of transformers' MambaMixer and JambaMambaMixer (idempotent)."""
    ext()
    for name in MODULES:
        if name not in _stock:
            mod = importlib.import_module(name)
            _stock[name] = mod.mamba_selective_scan
            mod.mamba_selective_scan = _patched(_stock[name])


def unpatch():
    for name in list(_stock):
        importlib.import_module(name).mamba_selective_scan = _stock.pop(name)


def stock_scan(module=MODULES[0]):
    """transformers' own mamba_selective_scan of `module`, patched or not."""
    return _stock.get(module) or importlib.import_module(module).mamba_selective_scan
