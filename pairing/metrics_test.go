package pairing_test

import (
	"github.com/stretchr/testify/require"
)

// metricValue returns the value of the series name{labels} (0 when absent).
func (d *dispatch) metricValue(name string, labels map[string]string) float64 {
	d.t.Helper()
	mfs, err := d.reg.Gather()
	require.NoError(d.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}
