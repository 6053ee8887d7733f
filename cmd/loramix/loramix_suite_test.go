package main

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestLoramix(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "loramix command Suite")
}
