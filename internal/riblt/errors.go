package riblt

import "errors"

// Sentinel errors. Functions wrap them with what was being done; check with
// errors.Is.
var (
	// ErrRange: a range of symbols is inverted, starts below 0 or reaches
	// beyond MaxSymbols.
	ErrRange = errors.New("riblt: symbol range out of bounds")

	// ErrOutOfOrder: a run does not continue where the decoder's symbols end.
	// The decoder is unchanged; ask for the right range.
	ErrOutOfOrder = errors.New("riblt: run does not continue the decoder's symbols")

	// ErrStale: a change log no longer reaches back to the generation asked
	// for, or a peer's set is not the one its earlier symbols came from (it
	// restarted, or its change list is wrong). Start the reconciliation over.
	ErrStale = errors.New("riblt: symbols are from a set that has since changed too much")

	// ErrInconsistent: the peer's symbols contradict this node's set: they
	// decode to an item said to be only local that this node lacks, to one
	// said to be only the peer's that it holds, or to more items than
	// honest symbols can yield. The peer is hostile or its symbols were
	// corrupted; nothing decoded from them should be trusted.
	ErrInconsistent = errors.New("riblt: peer's symbols contradict the local set")

	// ErrMalformed: bytes are not a valid encoded run, or exceed the limits
	// they were decoded with.
	ErrMalformed = errors.New("riblt: malformed symbol run")
)
