package cuda

// Exported for the external test package.
var (
	XsSlot        = xsSlot
	GemvNF4Mirror = gemvNF4Mirror
	MmaMirror     = mmaMirror
)
