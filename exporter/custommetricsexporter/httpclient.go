package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
)

// maxErrorBody bounds how much of a refusal's body goes into the error.
const maxErrorBody = 512

// response is a vendor's answer.
type response struct {
	status int
	body   []byte
	header http.Header
}

// do sends one request and classifies the answer: 2xx is success; 429 and
// 503 with Retry-After become exporterhelper throttle errors (the retry waits
// at least that long); other 5xx, 408 and transport failures are retryable;
// every other status is permanent, carrying the vendor's message.
func (e *customMetricsExporter) do(ctx context.Context, api string, req *http.Request) (response, error) {
	resp, err := e.client.Do(req.WithContext(ctx))
	if err != nil {
		return response{}, fmt.Errorf("%s: %s %s: %w", api, req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, fmt.Errorf("%s: %s %s: reading the answer: %w", api, req.Method, req.URL.Path, err)
	}
	r := response{status: resp.StatusCode, body: body, header: resp.Header}
	if r.status >= 200 && r.status < 300 {
		return r, nil
	}
	err = fmt.Errorf("%s: %s %s: HTTP %d: %s", api, req.Method, req.URL.Path, r.status, vendorMessage(body))
	switch {
	case r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable:
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return r, exporterhelper.NewThrottleRetry(err, d)
		}
		return r, err
	case r.status >= 500 || r.status == http.StatusRequestTimeout:
		return r, err
	default:
		return r, consumererror.NewPermanent(err)
	}
}

// vendorMessage extracts the message of a refusal: ThreatConnect's
// {"status":"Failure","message":...}, else the (plain text) body, shortened.
func vendorMessage(body []byte) string {
	var f tc.FailureEnvelope
	if json.Unmarshal(body, &f) == nil && f.Message != "" {
		return f.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > maxErrorBody {
		s = s[:maxErrorBody] + "..."
	}
	if s == "" {
		return "(no message)"
	}
	return s
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

func jsonRequest(method, url string, v any) (*http.Request, error) {
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, consumererror.NewPermanent(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, consumererror.NewPermanent(err)
	}
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}
