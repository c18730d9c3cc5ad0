//go:build unix

package tokenpipe_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// The listener's close returns, with nothing queued and under a flood,
// everywhere: on Linux it shuts the socket for reading and receives what is
// queued; elsewhere shutdown does not serve (FreeBSD, OpenBSD and NetBSD
// then answer every receive with 0 bytes, and FreeBSD disposes of the queued
// descriptors in the calling thread; macOS refuses it on an unconnected
// socket, and senders go on), so the socket is closed as it is
// (closeSocket). These are meant for the BSDs and macOS as much as for
// Linux; CI runs them on Linux only.

// TestNotifyListenerCloseReturns: a listener with nothing queued closes.
func TestNotifyListenerCloseReturns(t *testing.T) {
	l, err := tokenpipe.ListenNotify(nil)
	if err != nil {
		t.Fatal(err)
	}
	closeListenerWithin(t, l, nil)
}

// TestNotifyListenerCloseUnderFlood: a listener closes while another
// process (here a goroutine) sends it datagrams without descriptors as fast
// as it can, as a grandchild that holds NOTIFY_SOCKET may.
func TestNotifyListenerCloseUnderFlood(t *testing.T) {
	l, err := tokenpipe.ListenNotify(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	addr := &unix.SockaddrUnix{Name: l.Addr()}
	stop := make(chan struct{})
	flooding := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := unix.Sendto(s, []byte("STATUS=flood"), unix.MSG_DONTWAIT, addr)
			if i == 0 {
				close(flooding)
			}
			switch err {
			case nil, unix.EAGAIN, unix.ENOBUFS, unix.EINTR:
				runtime.Gosched()
			default:
				return // the socket is shut or gone
			}
		}
	}()
	<-flooding
	closeListenerWithin(t, l, func() { close(stop); <-stopped })
}

// closeListenerWithin closes l and fails the test if that takes hangGuard;
// either way it calls stop, if not nil, to end what is sending to l.
func closeListenerWithin(t *testing.T, l *tokenpipe.NotifyListener, stop func()) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	if stop != nil {
		defer stop()
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
		return
	case <-time.After(hangGuard):
	}
	t.Fatalf("Close still running after %v (%s)", hangGuard, runtime.GOOS)
}
