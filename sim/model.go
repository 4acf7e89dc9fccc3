package sim

import (
	"bytes"
	"compress/lzw"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The model of memberlist: what it puts on the wire and when. Sizes come
// from memberlist's own encoding (msgpack of its message structs, a type
// byte first, LZW compression when it helps, a CRC on packets to known
// nodes), computed here with the same codec; the timers and limits are
// its configuration.

// memberlist's message types and framing (memberlist/net.go).
const (
	pingMsg         = 0
	indirectPingMsg = 1
	ackRespMsg      = 2
	compoundMsg     = 7
	userMsg         = 8
	compressMsg     = 9
	nackRespMsg     = 11

	compoundHeaderOverhead = 2 // type and count
	compoundOverhead       = 2 // length of each part
	userMsgOverhead        = 1 // type
	crcOverhead            = 5 // hasCrc type and CRC-32, on packets to a known node
	lzwLitWidth            = 8
)

// memberlist's message structs, with the same fields (and so the same
// msgpack encoding).
type mlPing struct {
	SeqNo      uint32
	Node       string
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

type mlIndirectPing struct {
	SeqNo      uint32
	Target     []byte
	Port       uint16
	Node       string
	Nack       bool
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

type mlAck struct {
	SeqNo   uint32
	Payload []byte
}

type mlNack struct{ SeqNo uint32 }

type mlCompress struct {
	Algo int
	Buf  []byte
}

func mlEncode(t byte, v any) []byte {
	var buf bytes.Buffer
	buf.WriteByte(t)
	hd := codec.MsgpackHandle{}
	hd.TimeNotBuiltin = true
	if err := codec.NewEncoder(&buf, &hd).Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// compressedSize is what memberlist sends for payload b: its compressed
// form when that is shorter.
func compressedSize(b []byte) int {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, lzwLitWidth)
	_, _ = w.Write(b)
	_ = w.Close()
	c := mlEncode(compressMsg, &mlCompress{Algo: 0, Buf: buf.Bytes()})
	return min(len(b), len(c))
}

// probeSizes are the bytes of memberlist's probe messages between two of
// the run's nodes, as sent (compressed when that is shorter), and the
// ping and ack before compression (for packets that also carry gossip).
type probeSizes struct {
	ping, ack, indirect, nack int
	pingRaw, ackRaw           int
}

func newProbeSizes(from, to string, compress bool) probeSizes {
	addr := net.ParseIP("fd00::1:2").To16()
	const seq = 1 << 20 // a sequence number some time into a run
	msgs := [][]byte{
		mlEncode(pingMsg, &mlPing{SeqNo: seq, Node: to, SourceAddr: addr, SourcePort: 7946, SourceNode: from}),
		mlEncode(ackRespMsg, &mlAck{SeqNo: seq}),
		mlEncode(indirectPingMsg, &mlIndirectPing{SeqNo: seq, Target: addr, Port: 7946, Node: to, Nack: true, SourceAddr: addr, SourcePort: 7946, SourceNode: from}),
		mlEncode(nackRespMsg, &mlNack{SeqNo: seq}),
	}
	var sent [4]int
	for i, m := range msgs {
		sent[i] = len(m)
		if compress {
			sent[i] = compressedSize(m)
		}
	}
	return probeSizes{ping: sent[0], ack: sent[1], indirect: sent[2], nack: sent[3], pingRaw: len(msgs[0]), ackRaw: len(msgs[1])}
}

// packer computes the size of memberlist packets carrying user messages
// (the mesh's gossip), caching each message's compressed size: a record's
// message is the same bytes at every node, and so is each of memberlist's
// own.
type packer struct {
	compress  bool
	user, own map[string]int
}

// packet is the size of a packet holding a memberlist message of
// firstRaw bytes (firstCompressed compressed; none if 0), memberlist's own
// broadcasts ml and the user messages msgs.
func (p *packer) packet(firstRaw, firstCompressed int, ml, msgs [][]byte, crc bool) int {
	parts := len(ml) + len(msgs)
	raw := 0
	for _, m := range ml {
		raw += len(m)
	}
	for _, m := range msgs {
		raw += userMsgOverhead + len(m)
	}
	if firstRaw > 0 {
		parts++
		raw += firstRaw
	}
	if parts == 1 && firstRaw > 0 {
		return firstCompressed // a probe message alone
	}
	size := raw
	comp := 0
	if parts > 1 {
		size += compoundHeaderOverhead + compoundOverhead*parts
		comp = compoundHeaderOverhead + compoundOverhead*parts
	}
	if p.compress {
		// memberlist compresses the packet whole; the model takes the
		// sum of its parts compressed one by one, which is about that
		// (the records in it are signed bytes that hardly compress).
		if firstRaw > 0 {
			comp += firstCompressed
		}
		for _, m := range ml {
			comp += p.compressed(m, false)
		}
		for _, m := range msgs {
			comp += p.compressed(m, true)
		}
		size = min(size, comp)
	}
	if crc {
		size += crcOverhead
	}
	return size
}

// batch is the size of a packet holding the mesh's own batch of msgs
// (mesh/crowding.go): a user message of type 'B', each message after its
// two-byte length, sent to a known node (CRC).
func (p *packer) batch(msgs [][]byte) int {
	raw, comp := userMsgOverhead+1, userMsgOverhead+1
	for _, m := range msgs {
		raw += 2 + len(m)
		comp += 2 + p.compressed(m, false)
	}
	if p.compress {
		raw = min(raw, comp)
	}
	return raw + crcOverhead
}

// compressed is the compressed size of one part (a user message framed
// with its type byte, or one of memberlist's own), cached by content.
func (p *packer) compressed(m []byte, user bool) int {
	cache := &p.own
	if user {
		cache = &p.user
	}
	if c, ok := (*cache)[string(m)]; ok {
		return c
	}
	b := make([]byte, 0, len(m)+1)
	if user {
		b = append(b, userMsg)
	}
	b = append(b, m...)
	c := compressedSize(b)
	if *cache == nil {
		*cache = map[string]int{}
	}
	(*cache)[string(m)] = c
	return c
}

// suspicionTimeout is memberlist's: SuspicionMult·max(1, log10(N))·ProbeInterval.
func suspicionTimeout(mult, n int, interval time.Duration) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(mult) * scale * float64(interval))
}

// gossipFloor is the push-gossip floor of issue 19, in rounds:
// log(N)/log(k+1) + ln(N)/k.
func gossipFloor(n, k int) float64 {
	return math.Log(float64(n))/math.Log(float64(k+1)) + math.Log(float64(n))/float64(k)
}

// HTTP as MemNetwork counts it (mesh/memnet.go): the request line, the
// headers the client set, Host, the status line, the headers the handler
// set, Content-Length, and the bodies.
const syncContentType = "Content-Type: application/x-data-mesher-sync\r\n"

func httpSyncRequest(hostport string, body int) int {
	return len("POST /v1/sync HTTP/1.1\r\n") + len(syncContentType) + len("\r\n") + body + len("Host: ") + len(hostport) + 2
}

func httpSyncAnswer(body int, noContent bool) int {
	if noContent {
		return len("HTTP/1.1 204 No Content\r\n") + len("\r\n") + len("Content-Length: 0\r\n")
	}
	return len("HTTP/1.1 200 OK\r\n") + len(syncContentType) + len("\r\n") + body + len("Content-Length: ") + len(strconv.Itoa(body)) + 2
}

func httpGet(path, hostport string) int {
	return len("GET ") + len(path) + len(" HTTP/1.1\r\n") + len("\r\n") + len("Host: ") + len(hostport) + 2
}

func httpRecordAnswer(body int) int {
	return len("HTTP/1.1 200 OK\r\n") + len("Content-Type: application/octet-stream\r\n") + len("\r\n") + body + len("Content-Length: ") + len(strconv.Itoa(body)) + 2
}
