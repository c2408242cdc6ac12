// Package sleuth holds the wire format of Sleuth's Custom Metric Impact
// registration (/work/shared/api/002_6305281f6740bb07.txt): POST
// /api/1/impact/{IMPACT_ID}/register_impact with a float value, an optional
// ISO-8601 date and the api key (in the body, or in the header
// "Authorization: apikey KEY"), answered in plain text.
package sleuth // import "github.com/custommetrics/bundle/internal/wire/sleuth"

import (
	"encoding/json"
	"mime"
	"net/url"
	"strconv"
	"strings"

	"github.com/custommetrics/bundle/internal/wire/number"
)

// ImpactPath is the path of impact source id's registration; ImpactPattern
// is the same as a net/http pattern ({id}).
func ImpactPath(id int64) string {
	return "/api/1/impact/" + strconv.FormatInt(id, 10) + "/register_impact"
}

// ImpactPattern is ImpactPath as a net/http pattern.
const ImpactPattern = "/api/1/impact/{id}/register_impact"

// Authorization is the header value that carries key; KeyOf reads it back.
func Authorization(key string) string { return authScheme + key }

// KeyOf returns the key of an Authorization header value ("apikey KEY", the
// scheme in any case), or false.
func KeyOf(header string) (string, bool) {
	if len(header) <= len(authScheme) || !strings.EqualFold(header[:len(authScheme)], authScheme) {
		return "", false
	}
	return strings.TrimSpace(header[len(authScheme):]), true
}

const authScheme = "apikey "

// Registration is the body a client sends: the value and its date
// (DateLayout, UTC).
type Registration struct {
	Value float64 `json:"value"`
	Date  string  `json:"date"`
}

// DateLayout is the ISO-8601 form of Registration.Date.
const DateLayout = "2006-01-02T15:04:05Z"

// Sleuth's answers (plain text). Success, BadValue, Unauthorized and NotFound
// are the document's; BadDate, DateRange and BadBody follow its
// "Bad Request - ..." form for the other invalid parameters.
const (
	Success      = "Success"
	BadValue     = "Bad Request - impact value must be a number"
	BadDate      = "Bad Request - date must be in ISO-8601 format"
	DateRange    = "Bad Request - date must be between 1700-01-01 and 2199-12-31"
	BadBody      = "Bad Request - body must be a JSON object or form data"
	Unauthorized = "Unauthorized"
	NotFound     = "MetricImpactSource Not Found"
)

// TooFrequent is the answer to a registration less than seconds after the
// impact source's previous one (status 429, with Retry-After).
func TooFrequent(seconds int) string {
	return "You may only register a custom metric once every " + strconv.Itoa(seconds) + " seconds"
}

// Request is a registration's parameters. A parameter the body does not
// carry is nil.
type Request struct {
	// Value is the JSON value given, a number or (from a form, always) a
	// string; read it with Number.
	Value  json.RawMessage `json:"value"`
	APIKey *string         `json:"api_key"`
	Date   *string         `json:"date"`
}

// ParseBody reads a JSON body, or a form body (Content-Type
// application/x-www-form-urlencoded) as Sleuth's older documentation
// declares the parameters (form data). It does not check the parameters.
func ParseBody(contentType string, body []byte) (Request, error) {
	var req Request
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		err := json.Unmarshal(body, &req)
		return req, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return req, err
	}
	if form.Has("value") {
		raw, _ := json.Marshal(form.Get("value"))
		req.Value = raw
	}
	if form.Has("api_key") {
		k := form.Get("api_key")
		req.APIKey = &k
	}
	if form.Has("date") {
		d := form.Get("date")
		req.Date = &d
	}
	return req, nil
}

// Number reads a value given as a JSON number or a numeric string, strictly
// (internal/wire/number); ok is false for anything else, including a number
// beyond float64.
func Number(raw json.RawMessage) (v float64, ok bool) {
	v, err := number.ParseJSON(raw)
	return v, err == nil
}
