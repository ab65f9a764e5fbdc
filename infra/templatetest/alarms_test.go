package templatetest

import (
	"reflect"
	"strings"
	"testing"
)

// alarmKey names what an alarm watches: namespace/metric/dimension value.
func alarmKeys(r *Resolved, tpl *Template) map[string]string {
	keys := map[string]string{}
	for _, id := range tpl.OfType("AWS::CloudWatch::Alarm") {
		p := r.Resources[id].Properties
		if p["MetricName"] != nil {
			dims := []string{}
			for _, d := range asList(p["Dimensions"]) {
				dims = append(dims, scalarString(dig(d, "Value")))
			}
			keys[scalarString(p["Namespace"])+"/"+scalarString(p["MetricName"])+"/"+strings.Join(dims, ",")] = id
			continue
		}
		for _, m := range asList(p["Metrics"]) {
			if n := dig(m, "MetricStat", "Metric", "MetricName"); n != nil {
				keys[scalarString(dig(m, "MetricStat", "Metric", "Namespace"))+"/"+scalarString(n)] = id
			}
		}
	}
	return keys
}

func TestAlarms(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for _, ps := range []struct {
		name   string
		values map[string]string
	}{{"no topic", defaults}, {"topic", features}} {
		r := resolveWith(t, tpl, ps.values)
		keys := alarmKeys(r, tpl)
		want := map[string]string{}
		for _, q := range []string{"Inbound", "Webhook", "Relay", "DSN"} {
			want["AWS/SQS/ApproximateNumberOfMessagesVisible/${"+q+"DLQ.QueueName}"] = "dead-letter depth"
			want["AWS/SQS/ApproximateAgeOfOldestMessage/${"+q+"Queue.QueueName}"] = "age of oldest job"
		}
		for _, s := range stages {
			want["AWS/Lambda/Errors/${"+s.function+"}"] = "function errors"
		}
		want["Postern/postern/SmtpTempFailures"] = "gateway 4xx rate"
		want["Postern/postern/SmtpReplies"] = "gateway 4xx rate"
		for k, what := range want {
			if keys[k] == "" {
				t.Errorf("%s: no alarm on %s (%s)", ps.name, k, what)
			}
		}
		for _, id := range tpl.OfType("AWS::CloudWatch::Alarm") {
			p := r.Resources[id].Properties
			topic := ps.values["AlarmTopicArn"]
			for _, k := range []string{"AlarmActions", "OKActions"} {
				got, has := p[k]
				if topic == "" && has {
					t.Errorf("%s %s: %s %v without a topic", ps.name, id, k, got)
				}
				if topic != "" && !reflect.DeepEqual(got, []any{topic}) {
					t.Errorf("%s %s: %s %v, want [%s]", ps.name, id, k, got, topic)
				}
			}
			if p["TreatMissingData"] == nil {
				t.Errorf("%s: TreatMissingData unset", id)
			}
		}
		for _, id := range []string{"InboundDLQAlarm", "WebhookDLQAlarm", "RelayDLQAlarm", "DSNDLQAlarm"} {
			p := r.Resources[id].Properties
			if p["ComparisonOperator"] != "GreaterThanThreshold" || scalarString(p["Threshold"]) != "0" {
				t.Errorf("%s: %v %v, want > 0", id, p["ComparisonOperator"], p["Threshold"])
			}
		}
	}
}

// TestTempFailureMetricFilters: the 4xx-rate alarm counts the gateway's
// JSON log lines by their smtp_code field.
func TestTempFailureMetricFilters(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	filters := map[string]string{}
	for _, id := range tpl.OfType("AWS::Logs::MetricFilter") {
		p := r.Resources[id].Properties
		if p["LogGroupName"] != "${GatewayLogGroup}" {
			t.Errorf("%s reads %v, want the gateway's log group", id, p["LogGroupName"])
		}
		filters[scalarString(dig(p, "MetricTransformations", 0, "MetricName"))] = scalarString(p["FilterPattern"])
	}
	if f := filters["SmtpTempFailures"]; !strings.Contains(f, "$.smtp_code >= 400") || !strings.Contains(f, "$.smtp_code < 500") {
		t.Errorf("SmtpTempFailures filter %q does not select 4xx smtp_code", f)
	}
	if f := filters["SmtpReplies"]; !strings.Contains(f, "$.smtp_code") {
		t.Errorf("SmtpReplies filter %q does not count replies", f)
	}
}

func TestOutputs(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	for name, want := range map[string]string{
		"LoadBalancerDnsName": "${LoadBalancer.DNSName}",
		"BucketName":          "${Bucket}",
		"InboundQueueUrl":     "${InboundQueue}",
		"WebhookQueueUrl":     "${WebhookQueue}",
		"RelayQueueUrl":       "${RelayQueue}",
		"DSNQueueUrl":         "${DSNQueue}",
	} {
		if got := dig(r.Outputs, name, "Value"); got != want {
			t.Errorf("output %s = %v, want %s", name, got, want)
		}
	}
}
