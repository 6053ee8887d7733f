#!/usr/bin/env python3
"""Compiles the embedded kernels with a local NVRTC (no GPU needed) the way
engine/cuda does at start-up, then runs ptxas on the PTX for the register and
spill report. Usage: nvrtc_check.py LIBNVRTC PTXAS [ARCH]
(e.g. /opt/cu11/usr/lib/x86_64-linux-gnu/libnvrtc.so /opt/cu11/usr/bin/ptxas 90).
PTX_VERSION=8.0 rewrites the PTX's .version line (for a newer ptxas)."""
import ctypes, os, re, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
kdir = os.path.join(here, "..", "..", "engine", "cuda", "kernels")
# the order engine/cuda concatenates them in (kernels.go)
src = "".join(open(os.path.join(kdir, f)).read() + "\n" for f in ["common.cuh", "matmul.cu", "ops.cu"])
lib = ctypes.CDLL(sys.argv[1])
ptxas = sys.argv[2]
arch = sys.argv[3] if len(sys.argv) > 3 else "90"
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"loramix.cu", 0, None, None) == 0
opts = [f"--gpu-architecture=compute_{arch}".encode(), b"--std=c++17", b"-default-device"]
arr = (ctypes.c_char_p * len(opts))(*opts)
rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t()
lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value)
lib.nvrtcGetProgramLog(prog, log)
if log.value.strip():
    print(log.value.decode())
if rc != 0:
    sys.exit("nvrtc failed: %d" % rc)
lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
ptx = ctypes.create_string_buffer(n.value)
lib.nvrtcGetPTX(prog, ptx)
text = ptx.value
if os.environ.get("PTX_VERSION"):  # an older NVRTC's PTX for a newer ptxas (the bulk copies need 8.0)
    text = re.sub(rb"^\.version [0-9.]+", b".version " + os.environ["PTX_VERSION"].encode(), text, count=1, flags=re.M)
with tempfile.NamedTemporaryFile(suffix=".ptx", delete=False) as f:
    f.write(text)
out = subprocess.run([ptxas, f"-arch=sm_{arch}", "-v", f.name, "-o", "/dev/null"], capture_output=True, text=True)
lines = (out.stdout + out.stderr).splitlines()
fn = None
for l in lines:
    if "Compiling entry function" in l:
        fn = l.split("'")[1]
    elif "Used" in l and fn:
        print(f"{fn:24s} {l.split('info    :')[-1].strip()}")
    elif "spill" in l and ("0 bytes spill stores" not in l or "0 bytes spill loads" not in l):
        print(f"{fn:24s} {l.split('info    :')[-1].strip()}")
    elif "error" in l.lower():
        print(l)
sys.exit(out.returncode)
