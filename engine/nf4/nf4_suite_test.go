package nf4_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestNF4(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "nf4")
}
