//go:build cuda

package cuda

import "gorgonia.org/cu"

// DeviceCount returns the number of CUDA devices.
func DeviceCount() (int, error) { return cu.NumDevices() }
