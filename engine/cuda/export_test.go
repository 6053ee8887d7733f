package cuda

// Exported for the external test package.
var (
	XsSlot        = xsSlot
	GemvNF4Mirror = gemvNF4Mirror
	MmaMirror     = mmaMirror
	// nf4_mmax_8, nf4_mmaxf_8
	MmaxLookupOffset = mmaxLookupOffset
	MmaxRowMirror    = mmaxRowMirror
	PrmtMirror       = prmtMirror
	// nf4_mmaxp_8, nf4_mmaxfp_8
	MmaxPostMirror      = mmaxPostMirror
	MmaxPostCodeInputs  = mmaxPostCodeInputs
	MmaxPostHalfInputs  = mmaxPostHalfInputs
	MmaxPostFloatInputs = mmaxPostFloatInputs
	// nf4_mmaxfpl_8
	MmaxLBStageSlot   = mmaxLBStageSlot
	MmaxLBReadOffset  = mmaxLBReadOffset
	MmaxExpandLane    = mmaxExpandLane
	MmaxExpandSources = mmaxExpandSources
)
