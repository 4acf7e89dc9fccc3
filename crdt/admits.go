package crdt

// Admits says whether network id's current settings let key k take part:
// "" when they do (or there are no settings yet), else the reason
// (ReasonBanned, or ReasonNotAllowed on a restricted network). The mesh
// asks it of gossip members, as ingestion asks it of hosts and claims.
func (s *State) Admits(id, k PublicKey) Reason {
	n := s.nets[id]
	if n == nil {
		return ReasonNotJoined
	}
	return n.policy(k)
}
