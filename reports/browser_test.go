package reports_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/reports"
)

// chromium finds a Chromium binary on PATH.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

var _ = Describe("report.html in a real browser", Label("browser"), func() {
	It("renders in headless Chromium to a screenshot with the charts on it", func() {
		bin := chromium()
		if bin == "" {
			const why = "neither chromium nor chromium-browser is on PATH: report.html was NOT checked in a browser (apt-get install chromium)"
			fmt.Fprintln(os.Stderr, "SKIPPED:", why)
			Skip(why)
		}
		dir := GinkgoT().TempDir()
		rep, err := reports.Build(fullInput(), dir)
		Expect(err).NotTo(HaveOccurred())
		page, err := filepath.Abs(rep.HTML)
		Expect(err).NotTo(HaveOccurred())

		shot := filepath.Join(dir, "screenshot.png")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+filepath.Join(dir, "profile"), "--hide-scrollbars",
			"--screenshot="+shot, "--window-size=1200,3000", "file://"+page)
		// Chromium's helper processes may hold a pipe open for seconds after
		// the browser exits, so its output goes to a file.
		logPath := filepath.Join(dir, "chromium.log")
		logFile, err := os.Create(logPath)
		Expect(err).NotTo(HaveOccurred())
		cmd.Stdout, cmd.Stderr = logFile, logFile
		err = cmd.Run()
		logFile.Close()
		out, _ := os.ReadFile(logPath)
		Expect(err).NotTo(HaveOccurred(), "chromium: %s", out)

		data, err := os.ReadFile(shot)
		Expect(err).NotTo(HaveOccurred(), "chromium wrote no screenshot: %s", out)
		img, err := png.Decode(bytes.NewReader(data))
		Expect(err).NotTo(HaveOccurred())
		Expect(img.Bounds().Dx()).To(Equal(1200))
		Expect(img.Bounds().Dy()).To(Equal(3000))
		By("showing the charts: a blank or text-only page has few colours")
		Expect(distinctColours(img, 2)).To(BeNumerically(">", 300))
		By("not being blank: a good share of pixels are not white")
		b := img.Bounds()
		ink, total := 0, 0
		for y := b.Min.Y; y < b.Max.Y; y += 3 {
			for x := b.Min.X; x < b.Max.X; x += 3 {
				r, g, bl, _ := img.At(x, y).RGBA()
				if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
					ink++
				}
				total++
			}
		}
		Expect(float64(ink) / float64(total)).To(BeNumerically(">", 0.05))
		if keep := os.Getenv("LORAMIX_REPORT_KEEP"); keep != "" {
			Expect(os.WriteFile(filepath.Join(keep, "screenshot.png"), data, 0o644)).To(Succeed())
		}
	})
})
