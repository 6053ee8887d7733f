package llama

import (
	"math"

	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// NF4Layer is the NF4 round trip of one decoder linear layer.
type NF4Layer struct {
	Name        string  `json:"name"`
	Rows        int     `json:"rows"`
	Cols        int     `json:"cols"`
	SourceBytes int64   `json:"source_bytes"` // as stored in the checkpoint
	NF4Bytes    int64   `json:"nf4_bytes"`    // codes, 8-bit absmax, scales, offset
	RelErr      float64 `json:"rel_err"`      // ||W - dequant(quant(W))||_F / ||W||_F
	MaxAbsErr   float64 `json:"max_abs_err"`
}

// NF4Report describes what NF4 quantization does to a checkpoint.
type NF4Report struct {
	Layers            []NF4Layer `json:"layers"`
	LinearParams      int64      `json:"linear_params"`
	LinearSourceBytes int64      `json:"linear_source_bytes"`
	LinearNF4Bytes    int64      `json:"linear_nf4_bytes"`
	BitsPerParam      float64    `json:"bits_per_param"` // of the quantized layers
	RelErr            float64    `json:"rel_err"`        // over all quantized layers together
	// OtherBytes is what the layers that stay 16/32-bit take in memory
	// (embeddings, norms, lm_head: F16 when stored as F16, else F32).
	OtherBytes int64 `json:"other_bytes"`
	// TotalBytes is the weight memory of the model loaded with Quant NF4.
	TotalBytes int64 `json:"total_bytes"`
}

// InspectNF4 quantizes every decoder linear layer of a checkpoint to NF4
// (as Load does) and reports the round-trip error and the memory footprint,
// layer by layer.
func InspectNF4(cfg *checkpoint.Config, w checkpoint.Weights) (*NF4Report, error) {
	if err := checkpoint.CheckWeights(cfg, w); err != nil {
		return nil, err
	}
	r := &NF4Report{}
	var num, den float64
	for _, e := range cfg.Expected() {
		info, _ := w.Info(e.Name)
		n := int64(info.NumElements())
		if !isLinear(e.Role) {
			size := int64(4)
			if info.DType == dtype.F16 {
				size = 2
			}
			r.OtherBytes += n * size
			continue
		}
		v, shape, err := w.Float32(e.Name)
		if err != nil {
			return nil, err
		}
		q := nf4.Quantize(v, shape[0], shape[1])
		back := make([]float32, len(v))
		q.Dequantize(back)
		var ln, ld, mx float64
		for i := range v {
			d := float64(back[i]) - float64(v[i])
			ln += d * d
			ld += float64(v[i]) * float64(v[i])
			mx = math.Max(mx, math.Abs(d))
		}
		num, den = num+ln, den+ld
		l := NF4Layer{Name: e.Name, Rows: shape[0], Cols: shape[1], SourceBytes: n * int64(info.DType.Size()),
			NF4Bytes: int64(q.Bytes()), MaxAbsErr: mx}
		if ld > 0 {
			l.RelErr = math.Sqrt(ln / ld)
		}
		r.Layers = append(r.Layers, l)
		r.LinearParams += n
		r.LinearSourceBytes += l.SourceBytes
		r.LinearNF4Bytes += l.NF4Bytes
	}
	if r.LinearParams > 0 {
		r.BitsPerParam = 8 * float64(r.LinearNF4Bytes) / float64(r.LinearParams)
	}
	if den > 0 {
		r.RelErr = math.Sqrt(num / den)
	}
	r.TotalBytes = r.LinearNF4Bytes + r.OtherBytes
	return r, nil
}

func isLinear(r checkpoint.Role) bool {
	switch r {
	case checkpoint.WQ, checkpoint.WK, checkpoint.WV, checkpoint.WO, checkpoint.WGate, checkpoint.WUp, checkpoint.WDown:
		return true
	}
	return false
}
