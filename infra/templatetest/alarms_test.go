package templatetest

import (
	"reflect"
	"slices"
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
	}{{"own topic", defaults}, {"own topic and email", sseS3}, {"given topic", features}} {
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

		// Every alarm notifies the chosen topic: AlarmTopicArn, or the
		// stack's own, which exists only then.
		topic := ps.values["AlarmTopicArn"]
		_, ownTopic := r.Resources["AlarmTopic"]
		if topic == "" {
			topic = "${AlarmTopic}"
			if !ownTopic {
				t.Fatalf("%s: no AlarmTopicArn and no AlarmTopic: alarms would notify nobody", ps.name)
			}
			tp := r.Resources["AlarmTopic"]
			if tp.Type != "AWS::SNS::Topic" || tp.Properties["KmsMasterKeyId"] != "${AlarmTopicKey}" {
				t.Errorf("%s: AlarmTopic %s %v, want an SNS topic encrypted with AlarmTopicKey", ps.name, tp.Type, tp.Properties["KmsMasterKeyId"])
			}
			checkAlarmTopicKey(t, ps.name, r.Resources["AlarmTopicKey"])
		} else if ownTopic {
			t.Errorf("%s: the stack creates AlarmTopic although AlarmTopicArn is given", ps.name)
		}
		for _, id := range tpl.OfType("AWS::CloudWatch::Alarm") {
			p := r.Resources[id].Properties
			for _, k := range []string{"AlarmActions", "OKActions"} {
				if got := p[k]; !reflect.DeepEqual(got, []any{topic}) {
					t.Errorf("%s %s: %s %v, want [%s]", ps.name, id, k, got, topic)
				}
			}
			if p["TreatMissingData"] == nil {
				t.Errorf("%s: TreatMissingData unset", id)
			}
		}

		sub, subscribed := r.Resources["AlarmEmailSubscription"]
		email := ps.values["AlarmEmail"]
		switch {
		case email != "" && ps.values["AlarmTopicArn"] == "":
			if !subscribed || sub.Properties["Protocol"] != "email" || sub.Properties["Endpoint"] != email || sub.Properties["TopicArn"] != "${AlarmTopic}" {
				t.Errorf("%s: AlarmEmail %s does not subscribe to AlarmTopic: %v", ps.name, email, sub.Properties)
			}
		case subscribed:
			t.Errorf("%s: an email subscription without AlarmEmail or to a topic the stack does not own: %v", ps.name, sub.Properties)
		}
		for _, id := range []string{"InboundDLQAlarm", "WebhookDLQAlarm", "RelayDLQAlarm", "DSNDLQAlarm"} {
			p := r.Resources[id].Properties
			if p["ComparisonOperator"] != "GreaterThanThreshold" || scalarString(p["Threshold"]) != "0" {
				t.Errorf("%s: %v %v, want > 0", id, p["ComparisonOperator"], p["Threshold"])
			}
		}
	}
}

// checkAlarmTopicKey: CloudWatch can publish to an encrypted topic only if
// the key's policy lets it use the key, for this account's alarms.
func checkAlarmTopicKey(t *testing.T, set string, key Resource) {
	t.Helper()
	if key.Type != "AWS::KMS::Key" || key.Properties["EnableKeyRotation"] != true {
		t.Errorf("%s: AlarmTopicKey %s, rotation %v; want a rotating KMS key", set, key.Type, key.Properties["EnableKeyRotation"])
		return
	}
	for _, st := range asList(dig(key.Properties, "KeyPolicy", "Statement")) {
		if dig(st, "Principal", "Service") != "cloudwatch.amazonaws.com" {
			continue
		}
		if a := strs(dig(st, "Action")); !slices.Contains(a, "kms:Decrypt") || !slices.Contains(a, "kms:GenerateDataKey*") {
			t.Errorf("%s: CloudWatch may %v on AlarmTopicKey, want kms:Decrypt and kms:GenerateDataKey*", set, a)
		}
		if dig(st, "Condition", "StringEquals", "aws:SourceAccount") != "123456789012" {
			t.Errorf("%s: CloudWatch's use of AlarmTopicKey is not limited to this account", set)
		}
		return
	}
	t.Errorf("%s: AlarmTopicKey's policy does not let CloudWatch publish", set)
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
		"LoadBalancerDnsName":  "${LoadBalancer.DNSName}",
		"BucketName":           "${Bucket}",
		"InboundQueueUrl":      "${InboundQueue}",
		"WebhookQueueUrl":      "${WebhookQueue}",
		"RelayQueueUrl":        "${RelayQueue}",
		"DSNQueueUrl":          "${DSNQueue}",
		"NotificationTopicArn": "${AlarmTopic}",
	} {
		if got := dig(r.Outputs, name, "Value"); got != want {
			t.Errorf("output %s = %v, want %s", name, got, want)
		}
	}
	// gateway trace finds the stage outcomes in every function's log group.
	got := scalarString(dig(r.Outputs, "TraceLogGroups", "Value"))
	var want []string
	for _, s := range stages {
		want = append(want, "${"+s.logGroup+"}")
	}
	if got != strings.Join(want, ",") {
		t.Errorf("output TraceLogGroups = %s, want %s", got, strings.Join(want, ","))
	}
}
