package dtype_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestDType(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "DType Suite")
}
