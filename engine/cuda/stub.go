//go:build !cuda

package cuda

import "loramix/engine/backend"

// CUDA is the CUDA backend; in a build without the `cuda` tag it cannot be
// created.
type CUDA struct{ backend.Backend }

// New returns ErrNoCUDA: this binary was built without the `cuda` tag.
func New(o Options) (*CUDA, error) { return nil, ErrNoCUDA }
