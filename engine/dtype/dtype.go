// Package dtype converts between the storage dtypes that checkpoints use
// (F32, F16, BF16) and float32, the type loramix computes in on the CPU.
package dtype

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType names a storage type the way safetensors does.
type DType string

// The storage types loramix reads and writes.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	U8   DType = "U8"
	I8   DType = "I8"
	I32  DType = "I32"
	I64  DType = "I64"
	BOOL DType = "BOOL"
)

// Size returns the number of bytes one element of d takes, or 0 if d is unknown.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case U8, I8, BOOL:
		return 1
	}
	return 0
}

// IsFloat reports whether d is one of the float types that ToFloat32 accepts.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

// ToFloat32 decodes little-endian raw bytes of dtype d into dst, which must
// hold len(raw)/d.Size() elements. It returns an error for non-float dtypes
// or a byte count that is not a multiple of the element size.
func ToFloat32(dst []float32, raw []byte, d DType) error {
	sz := d.Size()
	if !d.IsFloat() {
		return fmt.Errorf("dtype: %s is not a float type", d)
	}
	if len(raw)%sz != 0 || len(raw)/sz != len(dst) {
		return fmt.Errorf("dtype: %d bytes of %s do not hold %d elements", len(raw), d, len(dst))
	}
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	}
	return nil
}

// FromFloat32 encodes src as little-endian bytes of dtype d (F32, F16 or BF16),
// rounding to nearest even.
func FromFloat32(src []float32, d DType) ([]byte, error) {
	out := make([]byte, len(src)*d.Size())
	switch d {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToBF16(v))
		}
	default:
		return nil, fmt.Errorf("dtype: cannot encode float32 as %s", d)
	}
	return out, nil
}

// F16ToF32 converts IEEE 754 half-precision bits to float32 exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: man * 2^-24; normalize to 1.f * 2^(e-14)
		e := int32(0)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		man &= 0x3ff
		return math.Float32frombits(sign | uint32(e+127-14)<<23 | man<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// F32ToF16 converts float32 to IEEE 754 half-precision bits, rounding to
// nearest even, with overflow to infinity and NaN kept NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rest := man & (1<<shift - 1)
		r := man >> shift
		if rest > half || (rest == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := man >> 13
	rest := man & 0x1fff
	if rest > 0x1000 || (rest == 0x1000 && r&1 == 1) {
		r++
		if r == 0x400 {
			r = 0
			e++
			if e >= 0x1f {
				return sign | 0x7c00
			}
		}
	}
	return sign | uint16(e)<<10 | uint16(r)
}

// F32ToBF16 converts float32 to bfloat16 bits, rounding to nearest even.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
