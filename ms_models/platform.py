"""Process-level settings MindSpore needs before it is imported.

MindSpore 2.10's CPU kernels use oneDNN, which on AVX-512 CPUs picks a reference (naive)
convolution for the NCHW layout; capping oneDNN at AVX2 selects its JIT kernels (a 3x3 64-channel
conv at 32x32 went from 210 ms to 1.4 ms on the reference machine). The variables are read when
oneDNN initialises, so this module must run before ``import mindspore``; ``ms_models`` imports it
first, and ``scripts/env.sh`` exports the same values for every process.
"""
import os

os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", os.environ["DNNL_MAX_CPU_ISA"])
