//go:build unix || windows

package tokenpipe_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The documents hold no placeholder where text should be, and every
// relative link leads to a file that exists.
func TestDocsHaveNoPlaceholdersOrDeadLinks(t *testing.T) {
	placeholder := regexp.MustCompile(`^[A-Z][A-Z_]{3,}$`)
	link := regexp.MustCompile(`\]\(([^)#:]+)\)`)
	for _, doc := range []string{"README.md", "DESIGN.md", "CONTRIBUTING.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if placeholder.MatchString(strings.TrimSpace(line)) {
				t.Errorf("%s:%d: placeholder %q where the text should be", doc, i+1, line)
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				if _, err := os.Stat(m[1]); err != nil {
					t.Errorf("%s:%d: links to %s: %v", doc, i+1, m[1], err)
				}
			}
		}
	}
}
