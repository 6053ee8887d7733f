package safetensors_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestSafetensors(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "safetensors")
}
