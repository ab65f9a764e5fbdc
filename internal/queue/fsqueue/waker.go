package fsqueue

import "sync"

// waker lets long-polling receivers sleep until something may have changed
// on their queue, instead of polling the file. A receiver takes the channel
// before it looks at the queue and sleeps on it afterwards, so a change made
// in between is never missed.
type waker struct {
	mu    sync.Mutex
	ch    chan struct{}
	taken bool // someone holds ch, so broadcast must close it
}

func newWaker() *waker { return &waker{ch: make(chan struct{})} }

// wait returns a channel that is closed at the next broadcast.
func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.taken = true
	return w.ch
}

// broadcast wakes every receiver that called wait before it. It costs
// nothing when no one is waiting, which is the common case under load.
func (w *waker) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.taken {
		return
	}
	close(w.ch)
	w.ch = make(chan struct{})
	w.taken = false
}
