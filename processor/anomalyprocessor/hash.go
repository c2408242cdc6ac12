package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"encoding/hex"
	"math"
	"math/bits"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// seriesKey identifies a series: a 128-bit hash of its resource attributes,
// metric name and data point attributes. The hash is fixed (no per-process
// seed) because keys are persisted; it does not allocate.
type seriesKey struct{ a, b uint64 }

const (
	k1 = 0x9E3779B97F4A7C15
	k2 = 0xC2B2AE3D27D4EB4F
	k3 = 0x165667B19E3779F9
	k4 = 0xD6E8FEB86659FD93
)

// hash128 is a two-lane streaming hash (lanes with different mixing).
type hash128 struct{ a, b uint64 }

func newHash(seed uint64) hash128 { return hash128{a: seed ^ k3, b: bits.RotateLeft64(seed, 32) ^ k4} }

func (h *hash128) word(w uint64) {
	h.a = bits.RotateLeft64((h.a^w)*k1, 29) * k2
	h.b = bits.RotateLeft64(h.b+w*k2, 31) * k1
}

func (h *hash128) str(s string) {
	n := len(s)
	for len(s) >= 8 {
		h.word(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
		s = s[8:]
	}
	var w uint64
	for i := 0; i < len(s); i++ {
		w |= uint64(s[i]) << (8 * i)
	}
	h.word(w)
	h.word(uint64(n))
}

func fmix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xFF51AFD7ED558CCD
	x ^= x >> 33
	x *= 0xC4CEB9FE1A85EC53
	x ^= x >> 33
	return x
}

func (h hash128) sum() seriesKey { return seriesKey{fmix(h.a ^ h.b>>7), fmix(h.b + h.a)} }

const (
	tagEmpty = iota + 1
	tagStr
	tagInt
	tagDouble
	tagBool
	tagBytes
	tagSlice
	tagMap
)

func (h *hash128) value(v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		h.word(tagStr)
		h.str(v.Str())
	case pcommon.ValueTypeInt:
		h.word(tagInt)
		h.word(uint64(v.Int()))
	case pcommon.ValueTypeDouble:
		h.word(tagDouble)
		h.word(math.Float64bits(v.Double()))
	case pcommon.ValueTypeBool:
		h.word(tagBool)
		if v.Bool() {
			h.word(1)
		} else {
			h.word(0)
		}
	case pcommon.ValueTypeBytes:
		h.word(tagBytes)
		b := v.Bytes()
		var w uint64
		for i := 0; i < b.Len(); i++ {
			w = w<<8 | uint64(b.At(i))
			if i%8 == 7 {
				h.word(w)
				w = 0
			}
		}
		h.word(w)
		h.word(uint64(b.Len()))
	case pcommon.ValueTypeSlice:
		h.word(tagSlice)
		s := v.Slice()
		h.word(uint64(s.Len()))
		for i := 0; i < s.Len(); i++ {
			h.value(s.At(i))
		}
	case pcommon.ValueTypeMap:
		h.word(tagMap)
		k := hashMap(0, v.Map(), false)
		h.word(k.a)
		h.word(k.b)
	default:
		h.word(tagEmpty)
	}
}

// anomalyAttrPrefix marks the attributes this processor adds; they are not
// part of a series' identity.
const anomalyAttrPrefix = otelmap.AnomalyAttrPrefix

// hashMap hashes an attribute map independently of its order (the sum of the
// mixed hashes of its pairs). With skipOwn, attributes named anomaly.* are
// ignored.
func hashMap(seed uint64, m pcommon.Map, skipOwn bool) seriesKey {
	var sa, sb, n uint64
	for k, v := range m.All() {
		if skipOwn && strings.HasPrefix(k, anomalyAttrPrefix) {
			continue
		}
		h := newHash(seed)
		h.str(k)
		h.value(v)
		s := h.sum()
		sa += s.a
		sb += s.b
		n++
	}
	h := newHash(seed ^ 0x5bd1e995)
	h.word(sa)
	h.word(sb)
	h.word(n)
	return h.sum()
}

// metricKey is the hash of a resource and a metric name.
func metricKey(resource seriesKey, name string) seriesKey {
	h := newHash(1)
	h.word(resource.a)
	h.word(resource.b)
	h.str(name)
	return h.sum()
}

// pointKey is the hash of a series: its metric key and point attributes.
func pointKey(metric, attrs seriesKey) seriesKey {
	h := newHash(2)
	h.word(metric.a)
	h.word(metric.b)
	h.word(attrs.a)
	h.word(attrs.b)
	return h.sum()
}

// storageKey is the storage key of a series' state.
func storageKey(k seriesKey) string {
	var b [len(storageKeyPrefix) + 32]byte
	copy(b[:], storageKeyPrefix)
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(k.a >> (56 - 8*i))
		raw[8+i] = byte(k.b >> (56 - 8*i))
	}
	hex.Encode(b[len(storageKeyPrefix):], raw[:])
	return string(b[:])
}

const storageKeyPrefix = "series/"

// parseStorageKey is the inverse of storageKey.
func parseStorageKey(s string) (seriesKey, bool) {
	if !strings.HasPrefix(s, storageKeyPrefix) || len(s) != len(storageKeyPrefix)+32 {
		return seriesKey{}, false
	}
	var raw [16]byte
	if _, err := hex.Decode(raw[:], []byte(s[len(storageKeyPrefix):])); err != nil {
		return seriesKey{}, false
	}
	var k seriesKey
	for i := 0; i < 8; i++ {
		k.a = k.a<<8 | uint64(raw[i])
		k.b = k.b<<8 | uint64(raw[8+i])
	}
	return k, true
}
