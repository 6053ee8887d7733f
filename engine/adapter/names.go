package adapter

import (
	"sort"
	"strconv"
	"strings"
)

// sortModuleNames orders names by layer index (numerically) then lexically.
func sortModuleNames(names []string) {
	sort.Slice(names, func(i, j int) bool {
		li, lj := layerIndex(names[i]), layerIndex(names[j])
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
}

// layerIndex returns N from "...layers.N...", or -1.
func layerIndex(name string) int {
	parts := strings.Split(name, ".")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "layers" {
			if n, err := strconv.Atoi(parts[i+1]); err == nil {
				return n
			}
		}
	}
	return -1
}
