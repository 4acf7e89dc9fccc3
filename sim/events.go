package sim

import (
	"container/heap"
	"time"
)

// The virtual clock: events run in (time, sequence) order, one at a time.

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// at schedules fn at virtual time t (not before now).
func (s *Sim) at(t time.Duration, fn func()) {
	if t < s.now {
		t = s.now
	}
	s.seq++
	heap.Push(&s.events, &event{at: t, seq: s.seq, fn: fn})
}

// after schedules fn d from now.
func (s *Sim) after(d time.Duration, fn func()) { s.at(s.now+d, fn) }

// step runs the next event; false when none is left or the next is past
// until.
func (s *Sim) step(until time.Duration) bool {
	if len(s.events) == 0 || s.events[0].at > until {
		return false
	}
	e := heap.Pop(&s.events).(*event)
	s.now = e.at
	s.eventCount++
	if s.eventCount&0xffff == 0 && s.cfg.Progress != nil {
		s.cfg.Progress(s.now, s.eventCount)
	}
	e.fn()
	return true
}
