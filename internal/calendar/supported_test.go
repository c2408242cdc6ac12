package calendar

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestSupportedRangeHasExactWindows: at both ends of the supported range,
// in the zones furthest east and west, WindowNanos gives the same window as
// Window on time.Time (no clamping, no overflow), and the instant lies in it.
func TestSupportedRangeHasExactWindows(t *testing.T) {
	for _, zone := range []string{"UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"} {
		c, err := LoadCalendar(zone)
		if !assert.NoError(t, err) {
			continue
		}
		for _, at := range []time.Time{MinTime, MaxTime.Add(-1), time.Unix(0, 0), time.Unix(0, -1)} {
			assert.True(t, Supported(at))
			assert.True(t, SupportedNanos(at.UnixNano()))
			for _, iv := range Intervals {
				s, e := c.WindowNanos(iv, at.UnixNano())
				ws, we := c.Window(iv, at)
				assert.Equal(t, ws.UnixNano(), s, "%s %s %s", zone, iv, at)
				assert.Equal(t, we.UnixNano(), e, "%s %s %s", zone, iv, at)
				assert.True(t, s <= at.UnixNano() && at.UnixNano() < e)
			}
		}
	}
	assert.False(t, Supported(MaxTime))
	assert.False(t, Supported(MinTime.Add(-1)))
	assert.False(t, Supported(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)))
	assert.False(t, Supported(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)))
}
