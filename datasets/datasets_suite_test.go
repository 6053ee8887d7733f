package datasets_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestDatasets(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "datasets")
}
