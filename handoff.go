package tokenpipe

// Handing an end to a child process: ExportTo in the parent, FromEnv in the
// child, and the registry of the descriptors (handles) that ends of this
// process hold, which FromEnv refuses. The per-OS halves, in
// handoff_unix.go and handoff_windows.go:
//
//   - (*sysFile).export(cmd) makes cmd's child inherit the end and returns
//     the value that names it in the child. It ends the reads and writes
//     under way first, and from then on every call but close fails with
//     ErrExported.
//   - importEnd(n) takes over the inherited end that n names, or says why n
//     names none, leaving it as it was.
//   - maxEndValue is the largest value FromEnv accepts, and envKeyEqual says
//     whether two environment variable names are the same.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// ErrExported is returned by operations on an end that ExportTo has handed to
// a child process. Such an end is only good for Close, which the parent should
// call once the child has started.
var ErrExported = errors.New("end was exported to a child process")

// ErrNotExported is returned by FromEnv when the environment variable is not
// set: the process was not started with an end exported to it.
var ErrNotExported = errors.New("no token pipe end was exported to this process")

// ExportTo arranges for the child that cmd starts to inherit e, and records in
// cmd's environment, under the variable env, the value the child passes to
// FromEnv. cmd.Env == nil means the parent's environment, which is kept; an
// existing value of env is replaced.
//
// The pattern is: ExportTo, cmd.Start, then e.Close in the parent whether or
// not Start succeeded, so that the child's exit is seen as io.EOF at the other
// end. From ExportTo on, e belongs to the child: every operation on it but
// Close fails with ErrExported, and reads and writes that were under way on
// e when ExportTo was called return ErrExported before it hands e over, so no
// token meant for the child is read in the parent. ExportTo blocks only until
// they have returned.
//
// ExportTo fails, leaving e as it was, when env is empty or contains '=' or
// NUL, cmd is nil or already started, or could not inherit e (Windows:
// SysProcAttr.NoInheritHandles), all matching os.ErrInvalid, or when e is
// closed (os.ErrClosed) or already exported (ErrExported). On Unix it adds e
// to the end of cmd.ExtraFiles, on Windows to the end of
// cmd.SysProcAttr.AdditionalInheritedHandles; do not reorder those
// afterwards. It sets cmd.Env, cmd.ExtraFiles and (Windows) cmd.SysProcAttr to
// new values and never writes into what they pointed to, so commands may
// share those.
func (e *TokenPipeEnd) ExportTo(cmd *exec.Cmd, env string) error {
	const op = "ExportTo"
	if err := checkEnvName(op, env); err != nil {
		return err
	}
	if cmd == nil {
		return fmt.Errorf("tokenpipe: %s: nil *exec.Cmd: %w", op, os.ErrInvalid)
	}
	if cmd.Process != nil {
		return fmt.Errorf("tokenpipe: %s: %s: command already started: %w", op, cmd.Path, os.ErrInvalid)
	}
	f, err := e.use(op)
	if err != nil {
		return err
	}
	value, err := f.sys.export(cmd)
	if err != nil {
		return wrapErr(op, err)
	}
	setEnv(cmd, env, value)
	return nil
}

// setEnv sets key to value in cmd's environment, replacing any value it has
// (cmd.Env == nil means the parent's environment; names ignore case on
// Windows).
func setEnv(cmd *exec.Cmd, key, value string) {
	env0 := cmd.Env
	if env0 == nil {
		env0 = cmd.Environ()
	}
	env := make([]string, 0, len(env0)+1)
	for _, kv := range env0 {
		if k, _, _ := strings.Cut(kv, "="); !envKeyEqual(k, key) {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, key+"="+value)
}

// fromEnvMu makes concurrent FromEnv calls for one variable take the end once.
var fromEnvMu sync.Mutex

// FromEnv takes over the end that the parent exported under the environment
// variable env with ExportTo. It checks that the value names an open pipe,
// makes it close-on-exec (Unix) or not inheritable (Windows) so that the
// process's own children do not hold it, and removes env from the
// environment. The end has the full contract of one from Make. On Linux the
// end gets an open file description of its own where /proc allows (see the
// README's platform notes), so that the flags of the parent's copy stay as
// they were.
//
// When env is not set it fails with ErrNotExported. A value that is not a
// canonical decimal number, or does not name an open pipe this process can
// read or write, gives an error naming env and the value that matches
// os.ErrInvalid, and the descriptor it names is left as it was. Standard
// input, output and error are always refused, and so is a descriptor (or
// handle) that an end of this process already holds: two ends closing one
// number would close, the second time, whatever reused it. A number alone
// cannot prove that it was inherited rather than opened by other code of
// this process; FromEnv trusts the variable in that respect.
func FromEnv(env string) (*TokenPipeEnd, error) {
	const op = "FromEnv"
	if err := checkEnvName(op, env); err != nil {
		return nil, err
	}
	fromEnvMu.Lock()
	defer fromEnvMu.Unlock()
	value, ok := os.LookupEnv(env)
	if !ok {
		return nil, fmt.Errorf("tokenpipe: %s: %s is not set: %w", op, env, ErrNotExported)
	}
	s, err := importOwned(value)
	if err != nil {
		return nil, fmt.Errorf("tokenpipe: %s: %s=%q: %w", op, env, value, err)
	}
	os.Unsetenv(env)
	e := new(TokenPipeEnd)
	e.f.Store(&endFile{sys: s})
	return e, nil
}

// importOwned parses value and takes over the end it names, unless an end of
// this process holds it already.
func importOwned(value string) (*sysFile, error) {
	n, err := parseEndValue(value)
	if err != nil {
		return nil, err
	}
	owned.Lock()
	defer owned.Unlock()
	if owned.n[uintptr(n)] > 0 {
		return nil, fmt.Errorf("%d is held by another end of this process, not inherited: %w", n, os.ErrInvalid)
	}
	s, err := importEnd(n)
	if err == nil {
		owned.add(s.handle())
	}
	return s, err
}

// owned counts, for each descriptor (Unix) or handle (Windows), the open ends
// of this process that hold it, so that FromEnv refuses those. A count, not a
// set: an end's number is released only after the close, by which time Make
// may have been handed the same number again.
var owned = ownedHandles{n: make(map[uintptr]int)}

type ownedHandles struct {
	sync.Mutex
	n map[uintptr]int
}

// add records h as held by one more end; owned must be locked.
func (o *ownedHandles) add(h uintptr) { o.n[h]++ }

// disown records that an end has closed h.
func disown(h uintptr) {
	owned.Lock()
	defer owned.Unlock()
	if owned.n[h]--; owned.n[h] <= 0 {
		delete(owned.n, h)
	}
}

// parseEndValue parses what ExportTo wrote: a decimal number without sign,
// spaces or leading zeros, so that exactly one spelling names each descriptor.
func parseEndValue(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty value: %w", os.ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number: %w", os.ErrInvalid)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("leading zero: %w", os.ErrInvalid)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxEndValue {
		return 0, fmt.Errorf("out of range (largest is %d): %w", uint64(maxEndValue), os.ErrInvalid)
	}
	return n, nil
}

func checkEnvName(op, env string) error {
	if env == "" || strings.ContainsAny(env, "=\x00") {
		return fmt.Errorf("tokenpipe: %s: bad environment variable name %q: %w", op, env, os.ErrInvalid)
	}
	return nil
}
