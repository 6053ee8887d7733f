//go:build !cuda

package cuda_test

import (
	. "github.com/onsi/ginkgo/v2"
)

// Without the cuda tag the GPU specs cannot run; they show up as skipped.
var _ = Describe("CUDA backend", Label("gpu"), func() {
	It("matches the CPU backend op by op and on the parity goldens", func() {
		Skip("no CUDA device: built without the cuda tag (go test -tags cuda ./engine/cuda/ on a CUDA machine)")
	})
})
