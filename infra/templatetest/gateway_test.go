package templatetest

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// smtpPorts maps each load balancer port to the container port and the
// listener mode the gateway's configuration must use there.
var smtpPorts = []struct {
	lb, container int
	mode          string
	targetGroup   string
}{
	{25, 2525, "smtp", "SmtpTargetGroup"},
	{587, 2587, "submission", "SubmissionTargetGroup"},
	{465, 2465, "smtps", "SmtpsTargetGroup"},
}

func gatewayContainer(t *testing.T, r *Resolved) map[string]any {
	t.Helper()
	defs, _ := dig(r.Resources["GatewayTaskDefinition"].Properties, "ContainerDefinitions").([]any)
	if len(defs) != 1 {
		t.Fatalf("%d container definitions, want 1 (gateway)", len(defs))
	}
	return asMap(defs[0])
}

func TestGatewayTaskDefinition(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		td := r.Resources["GatewayTaskDefinition"].Properties
		for key, want := range map[string]any{
			"RequiresCompatibilities": []any{"FARGATE"},
			"NetworkMode":             "awsvpc",
			"RuntimePlatform":         map[string]any{"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"},
			"ExecutionRoleArn":        "${GatewayExecutionRole.Arn}",
			"TaskRoleArn":             "${GatewayTaskRole.Arn}",
		} {
			if got := td[key]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: task definition %s = %#v, want %#v", ps.name, key, got, want)
			}
		}
		c := gatewayContainer(t, r)
		if c["Image"] != required["GatewayImageUri"] {
			t.Errorf("%s: image %v, want the GatewayImageUri parameter", ps.name, c["Image"])
		}
		user, _ := c["User"].(string)
		uid, _, _ := strings.Cut(user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("%s: container user %q, want a numeric non-root uid (the image's 65532)", ps.name, user)
		}
		if c["ReadonlyRootFilesystem"] != true {
			t.Errorf("%s: root filesystem is writable", ps.name)
		}
		if c["Privileged"] == true {
			t.Errorf("%s: privileged container", ps.name)
		}
		if got := strs(dig(c, "LinuxParameters", "Capabilities", "Drop")); !slices.Equal(got, []string{"ALL"}) {
			t.Errorf("%s: capabilities dropped %v, want [ALL]", ps.name, got)
		}
		if dig(c, "LinuxParameters", "Capabilities", "Add") != nil {
			t.Errorf("%s: capabilities added", ps.name)
		}

		// Writable: only the data volume at /data, which is data_dir.
		vols, _ := td["Volumes"].([]any)
		if len(vols) != 1 || dig(vols[0], "Name") != "data" || dig(vols[0], "Host") != nil || dig(vols[0], "EFSVolumeConfiguration") != nil {
			t.Errorf("%s: volumes %v, want one task-local volume named data", ps.name, vols)
		}
		mounts, _ := c["MountPoints"].([]any)
		if len(mounts) != 1 || dig(mounts[0], "SourceVolume") != "data" || dig(mounts[0], "ContainerPath") != "/data" {
			t.Errorf("%s: mount points %v, want data at /data only", ps.name, mounts)
		}
		env := containerEnv(c)
		if env["POSTERN_DATA_DIR"] != "/data" {
			t.Errorf("%s: POSTERN_DATA_DIR %q, want /data (the only writable path)", ps.name, env["POSTERN_DATA_DIR"])
		}

		var ports []int
		for _, pm := range c["PortMappings"].([]any) {
			ports = append(ports, mustNum(t, "ContainerPort", dig(pm, "ContainerPort")))
			if dig(pm, "Protocol") != "tcp" {
				t.Errorf("%s: port mapping %v is not tcp", ps.name, pm)
			}
		}
		slices.Sort(ports)
		if !slices.Equal(ports, []int{2465, 2525, 2587}) {
			t.Errorf("%s: container ports %v, want 2465 2525 2587", ps.name, ports)
		}
		if got := dig(c, "HealthCheck", "Command"); !reflect.DeepEqual(got, []any{"CMD", "/healthcheck"}) {
			t.Errorf("%s: health check %v, want [CMD /healthcheck] (distroless has no shell)", ps.name, got)
		}
		stop := mustNum(t, "StopTimeout", c["StopTimeout"])
		if stop < 60 || stop > 120 {
			t.Errorf("%s: StopTimeout %d s; want 60..120 (Fargate's maximum) for the SIGTERM drain", ps.name, stop)
		}
		if dig(c, "LogConfiguration", "LogDriver") != "awslogs" || dig(c, "LogConfiguration", "Options", "awslogs-group") != "${GatewayLogGroup}" {
			t.Errorf("%s: logs %v, want awslogs to GatewayLogGroup", ps.name, c["LogConfiguration"])
		}
		if r.Resources["GatewayLogGroup"].Properties["RetentionInDays"] == nil {
			t.Errorf("gateway log group without retention")
		}
	}
}

func TestLoadBalancer(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	if got := dig(r.Resources["LoadBalancer"].Properties, "Type"); got != "network" {
		t.Errorf("load balancer type %v, want network", got)
	}
	listeners := map[int]string{} // port -> target group
	for _, id := range tpl.OfType("AWS::ElasticLoadBalancingV2::Listener") {
		p := r.Resources[id].Properties
		if p["Protocol"] != "TCP" || p["LoadBalancerArn"] != "${LoadBalancer}" {
			t.Errorf("%s: %v on %v, want TCP on LoadBalancer", id, p["Protocol"], p["LoadBalancerArn"])
		}
		listeners[mustNum(t, id+" Port", p["Port"])] = queueRef(dig(p, "DefaultActions", 0, "TargetGroupArn"))
	}
	if len(listeners) != len(smtpPorts) {
		t.Errorf("listeners on %v, want 25, 587, 465", listeners)
	}
	service := r.Resources["GatewayService"].Properties
	serviceTGs := map[string]int{}
	for _, lb := range service["LoadBalancers"].([]any) {
		if dig(lb, "ContainerName") != "gateway" {
			t.Errorf("service load balancer entry %v is not for the gateway container", lb)
		}
		serviceTGs[queueRef(dig(lb, "TargetGroupArn"))] = mustNum(t, "ContainerPort", dig(lb, "ContainerPort"))
	}
	for _, sp := range smtpPorts {
		tg := listeners[sp.lb]
		if tg != sp.targetGroup {
			t.Errorf("port %d forwards to %q, want %s", sp.lb, tg, sp.targetGroup)
			continue
		}
		p := r.Resources[tg].Properties
		if mustNum(t, tg+" Port", p["Port"]) != sp.container || p["Protocol"] != "TCP" || p["TargetType"] != "ip" {
			t.Errorf("%s: %v %v %v, want TCP to ip targets on %d", tg, p["Protocol"], p["TargetType"], p["Port"], sp.container)
		}
		if serviceTGs[tg] != sp.container {
			t.Errorf("service maps %s to container port %d, want %d", tg, serviceTGs[tg], sp.container)
		}
		if p["HealthCheckProtocol"] != "TCP" || p["HealthCheckPort"] != "traffic-port" {
			t.Errorf("%s: health check %v on %v, want TCP on the traffic port", tg, p["HealthCheckProtocol"], p["HealthCheckPort"])
		}
		attrs := map[string]string{}
		for _, a := range p["TargetGroupAttributes"].([]any) {
			attrs[scalarString(dig(a, "Key"))] = scalarString(dig(a, "Value"))
		}
		if attrs["proxy_protocol_v2.enabled"] != "true" {
			t.Errorf("%s: proxy_protocol_v2.enabled %q, want true", tg, attrs["proxy_protocol_v2.enabled"])
		}
		if attrs["preserve_client_ip.enabled"] != "false" {
			t.Errorf("%s: preserve_client_ip.enabled %q, want false (the PROXY header carries the client)", tg, attrs["preserve_client_ip.enabled"])
		}
		delay, err := strconv.Atoi(attrs["deregistration_delay.timeout_seconds"])
		stop := mustNum(t, "StopTimeout", gatewayContainer(t, r)["StopTimeout"])
		if err != nil || delay > stop {
			t.Errorf("%s: deregistration delay %q, want at most the task's StopTimeout %d", tg, attrs["deregistration_delay.timeout_seconds"], stop)
		}
	}
	if dig(service, "DeploymentConfiguration", "DeploymentCircuitBreaker", "Rollback") != true {
		t.Error("service deployments do not roll back")
	}
	if service["LaunchType"] != "FARGATE" || service["EnableExecuteCommand"] == true {
		t.Errorf("service launch type %v, exec %v", service["LaunchType"], service["EnableExecuteCommand"])
	}
}

func TestSecurityGroups(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	type rule struct {
		group, peer string
		from, to    int
	}
	var ingress, egress []rule
	add := func(list *[]rule, group string, v any) {
		peer := scalarString(dig(v, "CidrIp"))
		for _, k := range []string{"SourceSecurityGroupId", "DestinationSecurityGroupId"} {
			if s := dig(v, k); s != nil {
				peer = scalarString(s)
			}
		}
		*list = append(*list, rule{group, peer, mustNum(t, "FromPort", dig(v, "FromPort")), mustNum(t, "ToPort", dig(v, "ToPort"))})
	}
	for _, id := range tpl.OfType("AWS::EC2::SecurityGroup") {
		p := r.Resources[id].Properties
		for _, v := range asList(p["SecurityGroupIngress"]) {
			add(&ingress, "${"+id+"}", v)
		}
		for _, v := range asList(p["SecurityGroupEgress"]) {
			add(&egress, "${"+id+"}", v)
		}
	}
	for _, id := range tpl.OfType("AWS::EC2::SecurityGroupIngress") {
		p := r.Resources[id].Properties
		add(&ingress, scalarString(p["GroupId"]), p)
	}
	for _, id := range tpl.OfType("AWS::EC2::SecurityGroupEgress") {
		p := r.Resources[id].Properties
		add(&egress, scalarString(p["GroupId"]), p)
	}
	lb, task := "${LoadBalancerSecurityGroup}", "${GatewaySecurityGroup}"
	for _, in := range ingress {
		switch in.group {
		case lb:
			if !slices.Contains([]int{25, 587, 465}, in.from) || in.from != in.to || in.peer != "0.0.0.0/0" {
				t.Errorf("load balancer ingress %+v, want one SMTP port from ClientCidr", in)
			}
		case task:
			if !slices.Contains([]int{2525, 2587, 2465}, in.from) || in.from != in.to || in.peer != lb {
				t.Errorf("gateway ingress %+v, want one container port from the load balancer's group", in)
			}
		default:
			t.Errorf("ingress to unknown group %+v", in)
		}
	}
	if len(ingress) != 6 {
		t.Errorf("%d ingress rules, want 3 on the load balancer and 3 on the tasks", len(ingress))
	}
	for _, out := range egress {
		switch {
		case out.group == lb && out.peer == task && slices.Contains([]int{2525, 2587, 2465}, out.from) && out.from == out.to:
		case out.group == lb && out.peer == "255.255.255.255/32":
			// The placeholder that removes the default allow-all egress.
		case out.group == task && out.peer == "0.0.0.0/0" && out.from == 443 && out.to == 443:
		default:
			t.Errorf("unexpected egress %+v", out)
		}
	}
}

func TestGatewayAutoscaling(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	st := r.Resources["GatewayScalableTarget"].Properties
	if st["ResourceId"] != "service/${GatewayCluster}/${GatewayService.Name}" || st["ScalableDimension"] != "ecs:service:DesiredCount" {
		t.Errorf("scalable target %v %v", st["ResourceId"], st["ScalableDimension"])
	}
	if mustNum(t, "MinCapacity", st["MinCapacity"]) < 2 {
		t.Error("default minimum is one task: a task or AZ failure takes SMTP down")
	}
	var cpu, conns bool
	for _, id := range tpl.OfType("AWS::ApplicationAutoScaling::ScalingPolicy") {
		p := r.Resources[id].Properties
		if p["ScalingTargetId"] != "${GatewayScalableTarget}" || p["PolicyType"] != "TargetTrackingScaling" {
			continue
		}
		cfg := p["TargetTrackingScalingPolicyConfiguration"]
		if dig(cfg, "PredefinedMetricSpecification", "PredefinedMetricType") == "ECSServiceAverageCPUUtilization" {
			cpu = true
		}
		for _, m := range asList(dig(cfg, "CustomizedMetricSpecification", "Metrics")) {
			if dig(m, "MetricStat", "Metric", "MetricName") == "ActiveFlowCount_TCP" {
				conns = true
			}
		}
	}
	if !cpu || !conns {
		t.Errorf("scaling on CPU %v, on connections %v; want both", cpu, conns)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// containerEnv returns a container's Environment as a map.
func containerEnv(c map[string]any) map[string]string {
	env := map[string]string{}
	for _, e := range asList(c["Environment"]) {
		env[scalarString(dig(e, "Name"))] = scalarString(dig(e, "Value"))
	}
	return env
}
