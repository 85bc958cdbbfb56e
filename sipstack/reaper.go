package sipstack

import (
	"sync"
	"time"
)

// expirer is something the reaper ends when its time comes.
type expirer interface{ expire() }

// reaper ends finished transactions after they have absorbed retransmissions
// for a while (Timers D, I, J, K, L, M). Those waits are long and never
// cancelled, and a call makes several of them, so one coarse wheel serves
// them all instead of a runtime timer each.
type reaper struct {
	res  time.Duration
	mu   sync.Mutex
	due  map[int64][]expirer
	next int64 // first slot not yet processed
	stop chan struct{}
	done chan struct{}
}

func newReaper(res time.Duration) *reaper {
	r := &reaper{res: res, due: make(map[int64][]expirer), stop: make(chan struct{}), done: make(chan struct{})}
	r.next = r.slot(time.Now())
	go r.run()
	return r
}

func (r *reaper) slot(t time.Time) int64 { return t.UnixNano() / int64(r.res) }

// after ends e once d has passed (rounded up to the wheel's resolution).
func (r *reaper) after(d time.Duration, e expirer) {
	s := r.slot(time.Now().Add(d)) + 1
	r.mu.Lock()
	if s < r.next {
		s = r.next
	}
	r.due[s] = append(r.due[s], e)
	r.mu.Unlock()
}

func (r *reaper) run() {
	defer close(r.done)
	tick := time.NewTicker(r.res)
	defer tick.Stop()
	var batch []expirer
	for {
		select {
		case <-r.stop:
			return
		case now := <-tick.C:
			batch = batch[:0]
			cur := r.slot(now)
			r.mu.Lock()
			for ; r.next <= cur; r.next++ {
				if es, ok := r.due[r.next]; ok {
					batch = append(batch, es...)
					delete(r.due, r.next)
				}
			}
			r.mu.Unlock()
			for i, e := range batch {
				e.expire()
				batch[i] = nil
			}
		}
	}
}

// close stops the wheel; what is still waiting is dropped.
func (r *reaper) close() {
	close(r.stop)
	<-r.done
}
