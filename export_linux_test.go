package tokenpipe

// SetReceiveHook makes the sd_notify listener call f for each datagram it
// receives, before it handles it, until restore is called. Set it before the
// listener starts and restore it after the listener has closed.
func SetReceiveHook(f func()) (restore func()) {
	testHookReceived = f
	return func() { testHookReceived = nil }
}

// Stopping returns a channel that is closed once the listener has begun to
// close or drain.
func (n *NotifyListener) Stopping() <-chan struct{} { return n.l.stop }
