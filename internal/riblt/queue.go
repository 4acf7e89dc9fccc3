package riblt

// queue is a binary min-heap of (index, slot) pairs packed into one uint64,
// index in the high half, so that the item due next is always on top. The
// encoder keeps every item whose next index lies beyond the symbols it has
// built; the decoder keeps every item it has recovered.
type queue []uint64

func entry(index, slot uint32) uint64 { return uint64(index)<<32 | uint64(slot) }

func (q queue) top() (index, slot uint32) { return uint32(q[0] >> 32), uint32(q[0]) }

func (q *queue) push(index, slot uint32) {
	*q = append(*q, entry(index, slot))
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

// replaceTop gives the top entry a new index and restores the heap.
func (q queue) replaceTop(index, slot uint32) {
	q[0] = entry(index, slot)
	q.down(0)
}

func (q *queue) pop() {
	h := *q
	n := len(h) - 1
	h[0] = h[n]
	*q = h[:n]
	if n > 0 {
		(*q).down(0)
	}
}

func (q queue) down(i int) {
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q[r] < q[l] {
			m = r
		}
		if q[i] <= q[m] {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// heapify restores the heap order of arbitrary contents.
func (q queue) heapify() {
	for i := len(q)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}
