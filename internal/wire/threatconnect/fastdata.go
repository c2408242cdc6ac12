package threatconnect // import "github.com/custommetrics/bundle/internal/wire/threatconnect"

import "unicode/utf8"

// scanData reads the common shape of a data body without reflection: one
// JSON object whose members are exactly "name", "value", "date" and
// "weight", each at most once, with a string (no escapes, valid UTF-8) or a
// number as its value. It fills req as the strict decoder would and reports
// true; for anything else (escapes, null, other types, other or repeated
// members, trailing data) it reports false and leaves the body to the strict
// decoder, which also words the error. FuzzParseData checks that both paths
// give the same result.
func scanData(body []byte, req *dataRequest) bool {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipSpace(body, i+1)
	var seen uint8
	if i < len(body) && body[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := scanString(body, i)
			if !ok {
				return false
			}
			j = skipSpace(body, j)
			if j >= len(body) || body[j] != ':' {
				return false
			}
			j = skipSpace(body, j+1)
			var val []byte
			var isString bool
			switch {
			case j < len(body) && body[j] == '"':
				_, k, ok := scanString(body, j)
				if !ok {
					return false
				}
				val, isString, j = body[j:k], true, k
			default:
				k, ok := scanNumber(body, j)
				if !ok {
					return false
				}
				val, j = body[j:k], k
			}
			var bit uint8
			switch string(key) {
			case "name":
				if !isString {
					return false
				}
				s := string(val[1 : len(val)-1])
				req.Name, bit = &s, 1
			case "value":
				req.Value, bit = val, 2
			case "date":
				if !isString {
					return false
				}
				s := string(val[1 : len(val)-1])
				req.Date, bit = &s, 4
			case "weight":
				req.Weight, bit = val, 8
			default:
				return false
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
			j = skipSpace(body, j)
			if j >= len(body) {
				return false
			}
			if body[j] == '}' {
				i = j + 1
				break
			}
			if body[j] != ',' {
				return false
			}
			i = skipSpace(body, j+1)
		}
	}
	return skipSpace(body, i) == len(body)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString reads a string without escapes starting at b[i] == '"' and
// returns its contents and the index after the closing quote.
func scanString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanNumber reads a number in JSON's grammar starting at b[i] and returns
// the index after it.
func scanNumber(b []byte, i int) (int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return 0, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return 0, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return 0, false
		}
	}
	return j, true
}
