//go:build !cuda

package cuda

// DeviceCount returns ErrNoCUDA: this binary was built without the `cuda` tag.
func DeviceCount() (int, error) { return 0, ErrNoCUDA }
