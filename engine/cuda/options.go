package cuda

import (
	"errors"

	"loramix/engine/backend"
)

// ErrNoCUDA is returned by New in a binary built without the `cuda` tag.
var ErrNoCUDA = errors.New("cuda: built without the cuda build tag (go build -tags cuda)")

// Options configures a CUDA backend.
type Options struct {
	Device      int           // CUDA device ordinal
	Compute     backend.DType // F32 (default) or F16: op outputs rounded to half, F16 KV caches advised
	KernelCache string        // folder of compiled kernels; "" means os.UserCacheDir()/loramix/kernels
}
