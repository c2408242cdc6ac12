package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

// Storage layout: one record per series-window under
//
//	w/<hex of the first 16 bytes of sha256(desc key | attributes)>/<interval>/<start unix ns>
//
// holding recordVersion, interval, start, end, flags (bit 0: the stored
// figure was emitted as closed, nothing left to emit; bit 1: a closing figure
// was emitted at some point, so the next emission is a restatement), the aggregation state (internal/aggregation encoding), the desc key,
// the desc's identity (resource, scope, metric name/unit/description/
// metadata as an OTLP protobuf) and the canonical attributes. The key is a
// pure function of the identity, so a late value finds its closed window's
// record with one Get. Records are written whole (last write wins) by the
// group committer.
const (
	// RecordPrefix starts the key of every window record.
	RecordPrefix = "w/"
	// recordVersion 2: the desc key leaves out the scope version (see
	// appendResourceScope). Version 1 records, whose desc key and storage key
	// included it, are rewritten under their version 2 key at load (migrate).
	recordVersion   = 2
	recordVersionV1 = 1
)

// storageKey is the key of the record of the window of d, iv and start with
// canonical attributes attrs.
func storageKey(d *Desc, iv calendar.Interval, start int64, attrs []byte) string {
	return RecordPrefix + hex.EncodeToString(seriesHash(d, attrs)) + "/" + iv.String() + "/" + strconv.FormatInt(start, 10)
}

// seriesHash identifies a series (desc and attributes) in storage: the first
// 16 bytes of their SHA-256, in storage keys and in the shared table.
func seriesHash(d *Desc, attrs []byte) []byte {
	h := sha256.New()
	h.Write([]byte(d.key))
	h.Write(attrs)
	return h.Sum(nil)[:16]
}

const (
	flagDone  = 1 // the stored figure went out as a closed window's figure
	flagFinal = 2 // a closing figure went out at some point
)

// recordKey is what a record says of its window besides state and flags.
type recordKey struct {
	d          *Desc
	iv         calendar.Interval
	start, end int64
	attrs      []byte
}

// keyOf returns w's record key. Caller holds w's shard lock; the result
// stays valid after it is released.
func (sh *shard) keyOf(w *window) recordKey {
	return recordKey{d: w.d, iv: w.iv, start: w.start, end: w.end(), attrs: sh.attrs(w)}
}

func (k *recordKey) storageKey() string { return storageKey(k.d, k.iv, k.start, k.attrs) }

func encodeRecord(k *recordKey, st *aggregation.State, flags byte) []byte {
	b := make([]byte, 0, 20+aggregation.EncodedSize+len(k.d.key)+len(k.d.blob)+len(k.attrs))
	b = append(b, recordVersion, byte(k.iv))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.start))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.end))
	b = append(b, flags)
	b = st.AppendBinary(b)
	b = appendString(b, k.d.key)
	b = appendString(b, string(k.d.blob))
	return append(b, k.attrs...)
}

type record struct {
	version    byte
	iv         calendar.Interval
	start, end int64
	done       bool
	final      bool
	state      aggregation.State
	dkey       string
	blob       []byte
	attrs      []byte
}

var errBadRecord = errors.New("aggregate: corrupt window record")

func decodeRecord(b []byte) (record, error) {
	var r record
	const head = 2 + 8 + 8 + 1
	if len(b) < head+aggregation.EncodedSize || (b[0] != recordVersion && b[0] != recordVersionV1) {
		return r, errBadRecord
	}
	r.version = b[0]
	r.iv = calendar.Interval(b[1])
	if !r.iv.Valid() {
		return r, errBadRecord
	}
	r.start = int64(binary.LittleEndian.Uint64(b[2:]))
	r.end = int64(binary.LittleEndian.Uint64(b[10:]))
	if _, ok := spanOf(r.start, r.end); !ok {
		return r, errBadRecord // calendar windows are whole seconds, at most a year
	}
	r.done = b[18]&flagDone != 0
	r.final = b[18]&flagFinal != 0
	var err error
	if r.state, err = aggregation.DecodeState(b[head : head+aggregation.EncodedSize]); err != nil {
		return r, err
	}
	rest := b[head+aggregation.EncodedSize:]
	if r.dkey, rest, err = decodeString(rest); err != nil {
		return r, err
	}
	var blob string
	if blob, rest, err = decodeString(rest); err != nil {
		return r, err
	}
	r.blob = []byte(blob)
	r.attrs = bytes.Clone(rest)
	return r, nil
}

// Record is what a stored window record says of its window (ReadRecord).
type Record struct {
	Interval   calendar.Interval
	Start, End int64
	State      aggregation.State
	Attrs      []byte // canonical attributes (DecodeMap)
}

// ReadRecord decodes a window record (a value under RecordPrefix): for
// tests and tools that inspect a store.
func ReadRecord(b []byte) (Record, error) {
	r, err := decodeRecord(b)
	return Record{Interval: r.iv, Start: r.start, End: r.end, State: r.state, Attrs: r.attrs}, err
}
