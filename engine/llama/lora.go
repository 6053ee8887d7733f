package llama

import (
	"fmt"
	"sort"

	"loramix/engine/adapter"
	"loramix/engine/backend"
	"loramix/engine/nf4"
)

// Base names the base model (no adapter) in SetActive and SetSlotAdapter;
// no adapter may be called so.
const Base = "base"

// lora is one adapter's pair for one linear layer.
type lora struct {
	a, b  backend.Tensor // (r, in), (out, r) F32
	scale float32        // alpha/r or alpha/sqrt(r)
}

// AddAdapter uploads an adapter's LoRA pairs next to the base weights, under
// a.Name, as PEFT's load_adapter does; the active adapter does not change.
// Every module must name a decoder linear layer with matching shapes.
func (m *Model) AddAdapter(a *adapter.Adapter) error {
	if a.Name == "" || a.Name == Base {
		return fmt.Errorf("adapter %s: name %q is reserved", a.Dir, a.Name)
	}
	if _, dup := m.adapters[a.Name]; dup {
		return fmt.Errorf("adapter %q is already loaded", a.Name)
	}
	byName := map[string]*Linear{}
	for _, l := range m.Linears() {
		byName[l.Name] = l
	}
	for _, name := range a.ModuleNames() {
		mod := a.Modules[name]
		l, ok := byName[name]
		if !ok {
			return fmt.Errorf("adapter %q (%s): module %q is not a decoder linear layer of this model", a.Name, a.Dir, name)
		}
		if mod.In != l.In || mod.Out != l.Out || len(mod.A) != mod.R*l.In || len(mod.B) != l.Out*mod.R || mod.R <= 0 {
			return fmt.Errorf("adapter %q (%s): module %q has r=%d, in=%d, out=%d; the model's layer is (%d, %d)", a.Name, a.Dir, name, mod.R, mod.In, mod.Out, l.Out, l.In)
		}
	}
	for _, name := range a.ModuleNames() {
		mod, l := a.Modules[name], byName[name]
		p := &lora{a: m.b.New(backend.F32, mod.R, mod.In), b: m.b.New(backend.F32, mod.Out, mod.R), scale: float32(mod.Scaling())}
		m.b.SetFloat32(p.a, mod.A)
		m.b.SetFloat32(p.b, mod.B)
		l.loras[a.Name] = p
	}
	m.adapters[a.Name] = a
	m.buf.rows[a.Name] = m.b.New(backend.I32, m.maxTokens)
	m.rowsHost[a.Name] = make([]int32, 0, m.maxTokens)
	return nil
}

// Adapters returns the names of the loaded adapters, sorted.
func (m *Model) Adapters() []string {
	names := make([]string, 0, len(m.adapters))
	for n := range m.adapters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Adapter returns a loaded adapter, or nil.
func (m *Model) Adapter(name string) *adapter.Adapter { return m.adapters[name] }

// SetActive makes the named adapter the one applied (Base or "" for none).
// Switching needs no reload.
func (m *Model) SetActive(name string) error {
	if name == Base {
		name = ""
	}
	if name != "" && m.adapters[name] == nil {
		return fmt.Errorf("no adapter %q is loaded (have %v)", name, m.Adapters())
	}
	m.active = name
	return nil
}

// Active returns the active adapter's name, "" for the base model.
func (m *Model) Active() string { return m.active }

// SetSlotAdapter makes cache slot (sequence) slot use the named adapter
// regardless of the active one: Base for none, "" to follow the active
// adapter again. It lets one batch evaluate several adapters.
func (m *Model) SetSlotAdapter(slot int, name string) error {
	if slot < 0 {
		return fmt.Errorf("slot %d", slot)
	}
	if name != "" && name != Base && m.adapters[name] == nil {
		return fmt.Errorf("no adapter %q is loaded (have %v)", name, m.Adapters())
	}
	for len(m.slot) <= slot {
		m.slot = append(m.slot, "")
	}
	m.slot[slot] = name
	return nil
}

// slotAdapter returns the adapter applied to a slot's tokens, "" for none.
func (m *Model) slotAdapter(slot int32) string {
	name := ""
	if int(slot) < len(m.slot) {
		name = m.slot[slot]
	}
	switch name {
	case "":
		return m.active
	case Base:
		return ""
	}
	return name
}

// setGroups decides which adapter applies to each token of the step: one
// group without row lists when all share one, else one row list per adapter.
func (m *Model) setGroups(s *step, seq []int32) {
	s.groups = s.groups[:0]
	first := m.slotAdapter(seq[0])
	same := true
	for _, sl := range seq[1:] {
		if m.slotAdapter(sl) != first {
			same = false
			break
		}
	}
	if same {
		if first != "" {
			s.groups = append(s.groups, group{name: first})
		}
		return
	}
	for name := range m.rowsHost {
		m.rowsHost[name] = m.rowsHost[name][:0]
	}
	for i, sl := range seq {
		if name := m.slotAdapter(sl); name != "" {
			m.rowsHost[name] = append(m.rowsHost[name], int32(i))
		}
	}
	for _, name := range m.Adapters() {
		if rows := m.rowsHost[name]; len(rows) > 0 {
			t := m.b.View(m.buf.rows[name], len(rows))
			m.b.SetInt32(t, rows)
			s.groups = append(s.groups, group{name: name, rows: t})
		}
	}
}

// Merge folds an adapter into the base weights, as PEFT's merge_and_unload:
// W' = W + scale·B·A for each adapted layer; an NF4 weight is dequantized,
// updated and quantized again. The adapter is unloaded afterwards (its
// effect is now in the base model). It returns the number of merged layers.
func (m *Model) Merge(name string) (int, error) {
	a := m.adapters[name]
	if a == nil {
		return 0, fmt.Errorf("no adapter %q is loaded (have %v)", name, m.Adapters())
	}
	merged := 0
	for _, l := range m.Linears() {
		p := l.loras[name]
		if p == nil {
			continue
		}
		mod := a.Modules[l.Name]
		w := make([]float32, l.Out*l.In)
		if l.q != nil {
			l.q.Dequantize(w)
		} else {
			m.b.Float32(w, l.W)
		}
		addDelta(w, mod, l.Out, l.In)
		old := l.W
		if l.q != nil {
			l.q = nf4.Quantize(w, l.Out, l.In)
			l.W = m.b.NF4(l.q)
		} else {
			l.W = m.b.New(old.DType(), l.Out, l.In)
			m.b.SetFloat32(l.W, w)
		}
		m.b.Free(old)
		m.b.Free(p.a)
		m.b.Free(p.b)
		delete(l.loras, name)
		merged++
	}
	delete(m.adapters, name)
	m.b.Free(m.buf.rows[name])
	delete(m.buf.rows, name)
	delete(m.rowsHost, name)
	if m.active == name {
		m.active = ""
	}
	for i, s := range m.slot {
		if s == name {
			m.slot[i] = ""
		}
	}
	return merged, nil
}

// addDelta adds scale · B (out, r) · A (r, in) to w (out, in), in float64.
func addDelta(w []float32, mod *adapter.Module, out, in int) {
	s := mod.Scaling()
	row := make([]float64, in)
	for o := 0; o < out; o++ {
		clear(row)
		for k := 0; k < mod.R; k++ {
			bk := float64(mod.B[o*mod.R+k])
			for i, av := range mod.A[k*in : (k+1)*in] {
				row[i] += bk * float64(av)
			}
		}
		for i := range row {
			w[o*in+i] += float32(s * row[i])
		}
	}
}
