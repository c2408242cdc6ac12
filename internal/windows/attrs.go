package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Canonical encodings. Series identity must not depend on the order in which
// a sender wrote attributes, and must be byte-identical across restarts (it
// is part of the storage key), so attributes are encoded sorted by key with
// a type tag. The encoding is also decodable: the output data point's
// attributes are rebuilt from it, so a window keeps no pcommon.Map.

const (
	tagStr   = 's'
	tagInt   = 'i'
	tagFloat = 'd'
	tagBool  = 'b'
	tagBytes = 'y'
	tagJSON  = 'j' // maps and slices, as JSON of their raw form
	tagEmpty = 'e'
)

type kv struct {
	k string
	v pcommon.Value
}

// appendMap appends the canonical encoding of m, skipping the keys for which
// keep returns false. kvs is scratch space (returned for reuse).
func appendMap(b []byte, m pcommon.Map, keep func(string) bool, kvs []kv) ([]byte, []kv) {
	kvs = kvs[:0]
	m.Range(func(k string, v pcommon.Value) bool {
		if keep == nil || keep(k) {
			kvs = append(kvs, kv{k, v})
		}
		return true
	})
	// Insertion sort: attribute sets are small and this does not allocate.
	for i := 1; i < len(kvs); i++ {
		for j := i; j > 0 && kvs[j].k < kvs[j-1].k; j-- {
			kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
		}
	}
	b = binary.AppendUvarint(b, uint64(len(kvs)))
	for i := range kvs {
		b = appendString(b, kvs[i].k)
		b = appendValue(b, kvs[i].v)
	}
	return b, kvs
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendValue(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b = append(b, tagStr)
		return appendString(b, v.Str())
	case pcommon.ValueTypeInt:
		b = append(b, tagInt)
		return binary.LittleEndian.AppendUint64(b, uint64(v.Int()))
	case pcommon.ValueTypeDouble:
		b = append(b, tagFloat)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBool:
		b = append(b, tagBool)
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	case pcommon.ValueTypeBytes:
		b = append(b, tagBytes)
		raw := v.Bytes().AsRaw()
		b = binary.AppendUvarint(b, uint64(len(raw)))
		return append(b, raw...)
	case pcommon.ValueTypeMap, pcommon.ValueTypeSlice:
		// Rare for metric attributes; allocates. Maps inside are encoded by
		// encoding/json with sorted keys, so the encoding is canonical.
		js, err := json.Marshal(v.AsRaw())
		if err != nil {
			js = []byte(v.AsString())
		}
		b = append(b, tagJSON)
		return appendString(b, string(js))
	default:
		return append(b, tagEmpty)
	}
}

var errBadEncoding = errors.New("aggregate: corrupt attribute encoding")

// DecodeMap rebuilds the attributes encoded by appendMap into dst. It returns
// the rest of b.
func DecodeMap(b []byte, dst pcommon.Map) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadEncoding
	}
	b = b[k:]
	dst.EnsureCapacity(int(n))
	for range n {
		var key string
		var err error
		if key, b, err = decodeString(b); err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, errBadEncoding
		}
		tag := b[0]
		b = b[1:]
		switch tag {
		case tagStr:
			var s string
			if s, b, err = decodeString(b); err != nil {
				return nil, err
			}
			dst.PutStr(key, s)
		case tagInt, tagFloat:
			if len(b) < 8 {
				return nil, errBadEncoding
			}
			u := binary.LittleEndian.Uint64(b)
			b = b[8:]
			if tag == tagInt {
				dst.PutInt(key, int64(u))
			} else {
				dst.PutDouble(key, math.Float64frombits(u))
			}
		case tagBool:
			if len(b) < 1 {
				return nil, errBadEncoding
			}
			dst.PutBool(key, b[0] == 1)
			b = b[1:]
		case tagBytes:
			var s string
			if s, b, err = decodeString(b); err != nil {
				return nil, err
			}
			dst.PutEmptyBytes(key).FromRaw([]byte(s))
		case tagJSON:
			var s string
			if s, b, err = decodeString(b); err != nil {
				return nil, err
			}
			var raw any
			if err := json.Unmarshal([]byte(s), &raw); err != nil {
				return nil, fmt.Errorf("%w: %w", errBadEncoding, err)
			}
			if err := dst.PutEmpty(key).FromRaw(raw); err != nil {
				return nil, fmt.Errorf("%w: %w", errBadEncoding, err)
			}
		case tagEmpty:
			dst.PutEmpty(key)
		default:
			return nil, errBadEncoding
		}
	}
	return b, nil
}

func decodeString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errBadEncoding
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}
