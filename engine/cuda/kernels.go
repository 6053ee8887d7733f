package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"strings"
)

//go:embed kernels/common.cuh kernels/matmul.cu kernels/ops.cu
var kernelFS embed.FS

// kernelFiles is the order in which the kernel sources are concatenated into
// one NVRTC program (common.cuh first: the others use its helpers).
var kernelFiles = []string{"kernels/common.cuh", "kernels/matmul.cu", "kernels/ops.cu"}

// Source returns the CUDA C source of all kernels, as one program.
func Source() string {
	var b strings.Builder
	for _, f := range kernelFiles {
		data, err := kernelFS.ReadFile(f)
		if err != nil {
			panic("cuda: embedded kernel " + f + " missing")
		}
		b.WriteString("// ---- " + f + "\n")
		b.Write(data)
		b.WriteString("\n")
	}
	return b.String()
}

// CompileOptions are the NVRTC options for compute capability arch ("90").
func CompileOptions(arch string) []string {
	return []string{"--gpu-architecture=compute_" + arch, "--std=c++17", "-default-device"}
}

// CacheKey names the compiled PTX of the kernels for one architecture and
// compiler: a hash of the source, the options and the NVRTC version, so an
// edited kernel or another card never reuses a stale file.
func CacheKey(arch, nvrtcVersion string) string {
	h := sha256.New()
	h.Write([]byte(Source()))
	h.Write([]byte("\x00" + strings.Join(CompileOptions(arch), " ") + "\x00" + nvrtcVersion))
	return "sm" + arch + "-" + hex.EncodeToString(h.Sum(nil))[:24]
}
