package riblt

import "fmt"

// Change is one item added to or removed from an encoder's set.
type Change struct {
	Item  Item
	Added bool // false: removed
}

// ChangeLogLen is how many recent changes an Encoder remembers. A
// reconciliation that spans several requests stays valid across changes on
// either side as long as fewer than this many happen between two of its
// requests.
const ChangeLogLen = 2048

// changeLog is a ring of the most recent changes; gen counts every change
// ever recorded, so change number g (1-based) sits at ring[(g-1) % ChangeLogLen].
// The ring grows as changes come, up to ChangeLogLen: a set that changes
// little (most networks, and every node of a simulated mesh of 100,000)
// does not pay 66 KB for it.
type changeLog struct {
	ring []Change
	gen  uint64
}

func (l *changeLog) record(x Item, added bool) {
	l.gen++
	c := Change{Item: x, Added: added}
	if len(l.ring) < ChangeLogLen {
		l.ring = append(l.ring, c)
		return
	}
	l.ring[(l.gen-1)%ChangeLogLen] = c
}

// since returns the changes after generation g, oldest first.
func (l *changeLog) since(g uint64) ([]Change, error) {
	switch {
	case g > l.gen:
		return nil, fmt.Errorf("%w: generation %d is ahead of this set's %d", ErrStale, g, l.gen)
	case l.gen-g > ChangeLogLen:
		return nil, fmt.Errorf("%w: %d changes since generation %d, %d remembered", ErrStale, l.gen-g, g, ChangeLogLen)
	}
	out := make([]Change, 0, l.gen-g)
	for i := g + 1; i <= l.gen; i++ {
		out = append(out, l.ring[(i-1)%ChangeLogLen])
	}
	return out, nil
}
