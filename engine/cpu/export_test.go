package cpu

// SetAssembly turns the assembly kernels on or off (where the CPU has them)
// and returns a function that restores the previous setting.
func SetAssembly(on bool) (restore func()) {
	old := useAVX2
	useAVX2 = on && old
	return func() { useAVX2 = old }
}
