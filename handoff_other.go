//go:build !unix && !windows

package tokenpipe

import (
	"errors"
	"math"
	"os/exec"
)

// maxEndValue is any value, so that importEnd says what is wrong.
const maxEndValue = math.MaxUint64

func (s *sysFile) export(cmd *exec.Cmd) (string, error) { return "", errors.ErrUnsupported }

func importEnd(n uint64) (*sysFile, error) { return nil, errors.ErrUnsupported }

func envKeyEqual(a, b string) bool { return a == b }
