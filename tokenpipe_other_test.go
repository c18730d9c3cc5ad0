//go:build !unix && !windows

package tokenpipe_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/tokenpipe/tokenpipe"
)

// Where there are no pipes to hand to children, the package compiles and says
// so instead of pretending.
func TestUnsupported(t *testing.T) {
	if p, err := tokenpipe.Make(); !errors.Is(err, errors.ErrUnsupported) || p != nil {
		t.Errorf("Make: got (%v, %v), want errors.ErrUnsupported", p, err)
	}
	t.Setenv("TOKENPIPE_TEST_END", "3")
	if _, err := tokenpipe.FromEnv("TOKENPIPE_TEST_END"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("FromEnv: got %v, want errors.ErrUnsupported", err)
	}
	var e tokenpipe.TokenPipeEnd
	if err := e.ExportTo(exec.Command("x"), "X"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ExportTo on a closed end: got %v, want os.ErrClosed", err)
	}
}
