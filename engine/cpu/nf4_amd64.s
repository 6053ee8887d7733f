#include "textflag.h"

// The NF4 kernels read 8 packed bytes (16 weights) at a time: the high
// nibbles are the even elements, the low nibbles the odd ones. A nibble is
// looked up in the 16-entry code table with two VPERMPS (codes 0-7 and 8-15)
// and a blend on bit 3. x is expected deinterleaved per group of 16:
// [x0 x2 .. x14 x1 x3 .. x15] (see deinterleave16).

// func nf4DotAVX2(packed *byte, xd *float32, absmax *float32, code *float32, nb int) float32
// Returns sum over blocks b < nb of absmax[b] * (codes of block b · xd block b).
TEXT ·nf4DotAVX2(SB), NOSPLIT, $0-44
	MOVQ packed+0(FP), SI
	MOVQ xd+8(FP), DI
	MOVQ absmax+16(FP), DX
	MOVQ code+24(FP), AX
	MOVQ nb+32(FP), CX
	VMOVUPS (AX), Y14
	VMOVUPS 32(AX), Y15
	VPCMPEQD Y13, Y13, Y13
	VPSRLD $28, Y13, Y13
	VXORPS Y0, Y0, Y0
dblock:
	TESTQ CX, CX
	JZ    ddone
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ $4, BX
dgroup:
	VPMOVZXBD (SI), Y3
	VPSRLD $4, Y3, Y4
	VPAND Y13, Y3, Y5
	VPERMPS Y14, Y4, Y6
	VPERMPS Y15, Y4, Y7
	VPSLLD $28, Y4, Y8
	VBLENDVPS Y8, Y7, Y6, Y6
	VFMADD231PS (DI), Y6, Y1
	VPERMPS Y14, Y5, Y9
	VPERMPS Y15, Y5, Y10
	VPSLLD $28, Y5, Y11
	VBLENDVPS Y11, Y10, Y9, Y9
	VFMADD231PS 32(DI), Y9, Y2
	ADDQ $8, SI
	ADDQ $64, DI
	DECQ BX
	JNZ  dgroup
	VADDPS Y2, Y1, Y1
	VBROADCASTSS (DX), Y12
	VFMADD231PS Y12, Y1, Y0
	ADDQ $4, DX
	DECQ CX
	JMP  dblock
ddone:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// func nf4DecodeAVX2(packed *byte, absmax *float32, code *float32, nb int, dst *float32)
// Writes the nb*64 dequantized weights code*absmax[b], deinterleaved per group of 16.
TEXT ·nf4DecodeAVX2(SB), NOSPLIT, $0-40
	MOVQ packed+0(FP), SI
	MOVQ absmax+8(FP), DX
	MOVQ code+16(FP), AX
	MOVQ nb+24(FP), CX
	MOVQ dst+32(FP), DI
	VMOVUPS (AX), Y14
	VMOVUPS 32(AX), Y15
	VPCMPEQD Y13, Y13, Y13
	VPSRLD $28, Y13, Y13
eblock:
	TESTQ CX, CX
	JZ    edone
	VBROADCASTSS (DX), Y12
	MOVQ $4, BX
egroup:
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
	DECQ BX
	JNZ  egroup
	ADDQ $4, DX
	DECQ CX
	JMP  eblock
edone:
	VZEROUPPER
	RET
