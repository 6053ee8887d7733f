#include "textflag.h"

// The NF4 kernels work on groups of 16 weights (8 packed bytes), each with
// its own dequantized absmax (a block of 64 spans four groups; a row whose
// length is not a multiple of 64 starts or ends mid-block). The high
// nibbles of a group are its even elements, the low nibbles the odd ones.
// A nibble is looked up in the 16-entry code table with two VPERMPS (codes
// 0-7 and 8-15) and a blend on bit 3. x is expected deinterleaved per group:
// [x0 x2 .. x14 x1 x3 .. x15] (see deinterleave16).

// func nf4DotAVX2(packed *byte, xd *float32, absmax *float32, code *float32, ng int) float32
// Returns the sum over groups g < ng of (codes of g * absmax[g]) · xd group g.
TEXT ·nf4DotAVX2(SB), NOSPLIT, $0-44
	MOVQ packed+0(FP), SI
	MOVQ xd+8(FP), DI
	MOVQ absmax+16(FP), DX
	MOVQ code+24(FP), AX
	MOVQ ng+32(FP), CX
	VMOVUPS (AX), Y14
	VMOVUPS 32(AX), Y15
	VPCMPEQD Y13, Y13, Y13
	VPSRLD $28, Y13, Y13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
dgroup:
	TESTQ CX, CX
	JZ    ddone
	VBROADCASTSS (DX), Y12
	VPMOVZXBD (SI), Y3
	VPSRLD $4, Y3, Y4
	VPAND Y13, Y3, Y5
	VPERMPS Y14, Y4, Y6
	VPERMPS Y15, Y4, Y7
	VPSLLD $28, Y4, Y8
	VBLENDVPS Y8, Y7, Y6, Y6
	VMULPS Y12, Y6, Y6
	VFMADD231PS (DI), Y6, Y0
	VPERMPS Y14, Y5, Y9
	VPERMPS Y15, Y5, Y10
	VPSLLD $28, Y5, Y11
	VBLENDVPS Y11, Y10, Y9, Y9
	VMULPS Y12, Y9, Y9
	VFMADD231PS 32(DI), Y9, Y1
	ADDQ $8, SI
	ADDQ $64, DI
	ADDQ $4, DX
	DECQ CX
	JMP  dgroup
ddone:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// func nf4DecodeAVX2(packed *byte, absmax *float32, code *float32, ng int, dst *float32)
// Writes the ng*16 dequantized weights code*absmax[g], deinterleaved per group.
TEXT ·nf4DecodeAVX2(SB), NOSPLIT, $0-40
	MOVQ packed+0(FP), SI
	MOVQ absmax+8(FP), DX
	MOVQ code+16(FP), AX
	MOVQ ng+24(FP), CX
	MOVQ dst+32(FP), DI
	VMOVUPS (AX), Y14
	VMOVUPS 32(AX), Y15
	VPCMPEQD Y13, Y13, Y13
	VPSRLD $28, Y13, Y13
egroup:
	TESTQ CX, CX
	JZ    edone
	VBROADCASTSS (DX), Y12
	VPMOVZXBD (SI), Y3
	VPSRLD $4, Y3, Y4
	VPAND Y13, Y3, Y5
	VPERMPS Y14, Y4, Y6
	VPERMPS Y15, Y4, Y7
	VPSLLD $28, Y4, Y8
	VBLENDVPS Y8, Y7, Y6, Y6
	VMULPS Y12, Y6, Y6
	VMOVUPS Y6, (DI)
	VPERMPS Y14, Y5, Y9
	VPERMPS Y15, Y5, Y10
	VPSLLD $28, Y5, Y11
	VBLENDVPS Y11, Y10, Y9, Y9
	VMULPS Y12, Y9, Y9
	VMOVUPS Y9, 32(DI)
	ADDQ $8, SI
	ADDQ $64, DI
	ADDQ $4, DX
	DECQ CX
	JMP  egroup
edone:
	VZEROUPPER
	RET
