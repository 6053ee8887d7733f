package llama

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// A checkpoint that bitsandbytes saved in 4-bit (transformers'
// save_pretrained of a load_in_4bit model) stores each quantized linear
// layer W as these tensors (QuantState.as_dict(packed=True)):
//
//	W                                     U8 (or another storage dtype), (ceil(n/2), 1): packed codes
//	W.absmax                              U8 (blocks): 8-bit absmax codes (double quantization)
//	W.nested_absmax                       F32 (groups): second-level scales
//	W.quant_map                           F32 (16): the 4-bit code table
//	W.nested_quant_map                    F32 (256): the dynamic map
//	W.quant_state.bitsandbytes__nf4       U8: JSON {quant_type, blocksize, dtype, shape,
//	                                      nested_blocksize, nested_offset, nested_dtype}
//
// loramix reads NF4 with double quantization, blocks of 64 and groups of
// 256, the layout it quantizes to itself.

const bnbStateSuffix = ".quant_state.bitsandbytes__nf4"

var bnbParts = []string{".absmax", ".nested_absmax", ".quant_map", ".nested_quant_map", bnbStateSuffix}

type bnbState struct {
	QuantType       string   `json:"quant_type"`
	Blocksize       int      `json:"blocksize"`
	DType           string   `json:"dtype"`
	Shape           []int    `json:"shape"`
	NestedBlocksize int      `json:"nested_blocksize"`
	NestedOffset    *float64 `json:"nested_offset"`
}

// bnbWeights lists the weights of w that bitsandbytes saved in 4-bit.
func bnbWeights(w checkpoint.Weights) map[string]bool {
	out := map[string]bool{}
	for _, n := range w.Names() {
		if base, ok := strings.CutSuffix(n, bnbStateSuffix); ok {
			out[base] = true
		}
		if strings.HasSuffix(n, ".quant_state.bitsandbytes__fp4") {
			out[strings.TrimSuffix(n, ".quant_state.bitsandbytes__fp4")] = true // refused in readBnb
		}
	}
	return out
}

// checkPrequantized is checkpoint.CheckWeights for a checkpoint with
// bitsandbytes 4-bit layers: those must be decoder linear layers whose
// recorded shape matches the config; the rest must be float tensors.
func checkPrequantized(cfg *checkpoint.Config, w checkpoint.Weights, pre map[string]bool) error {
	want := map[string]bool{}
	for _, e := range cfg.Expected() {
		want[e.Name] = true
		info, ok := w.Info(e.Name)
		if !ok {
			return fmt.Errorf("%s: tensor %q is missing", w.Source(), e.Name)
		}
		if pre[e.Name] {
			if !isLinear(e.Role) {
				return fmt.Errorf("%s: tensor %q is quantized by bitsandbytes; only the decoder's linear layers may be", w.Source(), e.Name)
			}
			continue // readBnb checks the recorded shape
		}
		if !info.DType.IsFloat() || len(info.Shape) != len(e.Shape) || info.NumElements() != elements(e.Shape) {
			return fmt.Errorf("%s: tensor %q has %s %v, config.json implies a float tensor %v", w.Source(), e.Name, info.DType, info.Shape, e.Shape)
		}
	}
	for _, n := range w.Names() {
		if want[n] || strings.HasSuffix(n, ".rotary_emb.inv_freq") || (n == "lm_head.weight" && cfg.TieWordEmbeddings) {
			continue
		}
		known := false
		for _, p := range bnbParts {
			if base, ok := strings.CutSuffix(n, p); ok && pre[base] {
				known = true
			}
		}
		if !known {
			return fmt.Errorf("%s: unexpected tensor %q for a %d-layer Llama", w.Source(), n, cfg.NumHiddenLayers)
		}
	}
	return nil
}

func elements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// readBnb reads the bitsandbytes 4-bit weight name, of shape (rows, cols).
func readBnb(w checkpoint.Weights, name string, rows, cols int) (*nf4.Tensor, error) {
	raw, ok := w.(checkpoint.RawWeights)
	if !ok {
		return nil, fmt.Errorf("%s: 4-bit weights need a safetensors checkpoint", w.Source())
	}
	bytesOf := func(n string) ([]byte, error) {
		b, _, err := raw.Raw(n)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %v", w.Source(), n, err)
		}
		return b, nil
	}
	floats := func(n string, want int) ([]float32, error) {
		info, ok := w.Info(n)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q is missing", w.Source(), n)
		}
		if info.DType != dtype.F32 || info.NumElements() != want {
			return nil, fmt.Errorf("%s: tensor %q is %s %v, want F32 with %d elements", w.Source(), n, info.DType, info.Shape, want)
		}
		v, _, err := w.Float32(n)
		return v, err
	}
	js, err := bytesOf(name + bnbStateSuffix)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: only nf4 is supported (%v)", w.Source(), name, err)
	}
	var st bnbState
	if err := json.Unmarshal(js, &st); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: quant state is not valid JSON: %v", w.Source(), name+bnbStateSuffix, err)
	}
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s: tensor %q: %s", w.Source(), name, fmt.Sprintf(format, a...))
	}
	switch {
	case st.QuantType != "nf4":
		return nil, errf("quant_type %q; only nf4 is supported", st.QuantType)
	case st.Blocksize != nf4.BlockSize:
		return nil, errf("blocksize %d; only %d is supported", st.Blocksize, nf4.BlockSize)
	case st.NestedOffset == nil:
		return nil, errf("no double quantization (bnb_4bit_use_double_quant); only double-quantized NF4 is supported")
	case st.NestedBlocksize != nf4.GroupSize:
		return nil, errf("nested_blocksize %d; only %d is supported", st.NestedBlocksize, nf4.GroupSize)
	case len(st.Shape) != 2 || st.Shape[0] != rows || st.Shape[1] != cols:
		return nil, errf("recorded shape %v, config.json implies [%d %d]", st.Shape, rows, cols)
	}
	t := &nf4.Tensor{Rows: rows, Cols: cols, Offset: float32(*st.NestedOffset)}
	packed, err := bytesOf(name)
	if err != nil {
		return nil, err
	}
	t.Packed = append([]byte(nil), packed...) // the file's bytes go away at Close
	if len(t.Packed) != (rows*cols+1)/2 {
		return nil, errf("%d packed bytes, want %d", len(t.Packed), (rows*cols+1)/2)
	}
	nb := t.NumBlocks()
	if info, _ := w.Info(name + ".absmax"); info.DType != dtype.U8 || info.NumElements() != nb {
		return nil, errf("absmax is %s %v, want U8 with %d elements (double quantization)", info.DType, info.Shape, nb)
	}
	qabs, err := bytesOf(name + ".absmax")
	if err != nil {
		return nil, err
	}
	t.QAbsmax = append([]uint8(nil), qabs...)
	if t.Absmax2, err = floats(name+".nested_absmax", (nb+nf4.GroupSize-1)/nf4.GroupSize); err != nil {
		return nil, err
	}
	code, err := floats(name+".quant_map", 16)
	if err != nil {
		return nil, err
	}
	for i, c := range code {
		if math.Abs(float64(c-nf4.Code[i])) > 1e-7 {
			return nil, errf("quant_map[%d] = %g is not the NF4 code %g", i, c, nf4.Code[i])
		}
	}
	dyn, err := floats(name+".nested_quant_map", 256)
	if err != nil {
		return nil, err
	}
	if m := nf4.DynamicMap(); !equalBits(m[:], dyn) {
		var own [256]float32
		copy(own[:], dyn)
		t.Map = &own
	}
	return t, nil
}

func equalBits(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}
