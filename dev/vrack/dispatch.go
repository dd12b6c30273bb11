package vrack

import "sync"

// dispatcher delivers events to Config.OnEvent in order from one goroutine,
// so that nodes never call it with a lock held (a power transition is
// reported under the emulated machine's lock).
type dispatcher struct {
	fn   func(Event)
	wake chan struct{}
	done chan struct{}

	mu     sync.Mutex
	queue  []Event
	closed bool
}

func newDispatcher(fn func(Event)) *dispatcher {
	d := &dispatcher{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if fn == nil {
		close(d.done)
		return d
	}
	go d.run()
	return d
}

func (d *dispatcher) push(e Event) {
	if d.fn == nil {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, e)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	for range d.wake {
		for {
			d.mu.Lock()
			batch := d.queue
			d.queue = nil
			closed := d.closed
			d.mu.Unlock()
			for _, e := range batch {
				d.fn(e)
			}
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
		}
	}
}

// close delivers what is queued, then stops the goroutine.
func (d *dispatcher) close() {
	if d.fn == nil {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.done
		return
	}
	d.closed = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	<-d.done
}
