package rotation_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/infra/rotation"
)

var (
	vpcSubnets = []string{"subnet-0123456789abcdef0", "subnet-0fedcba9876543210"}
	vpcGroups  = []string{"sg-0a1b2c3d4e5f60718"}
)

// inVpc is the stack the app makes from the vpcId, vpcSubnetIds and
// vpcSecurityGroupIds context keys.
func inVpc(t *testing.T) *synthesized {
	return synth(t, "vpc", rotation.RotationProps{VpcId: "vpc-0123456789abcdef0", VpcSubnetIds: vpcSubnets, VpcSecurityGroupIds: vpcGroups})
}

// inVpcNoGroups names no security group: the construct makes one.
func inVpcNoGroups(t *testing.T) *synthesized {
	return synth(t, "vpc-nogroups", rotation.RotationProps{VpcId: "vpc-0123456789abcdef0", VpcSubnetIds: vpcSubnets})
}

// TestVpcFromIds: given a VPC by its ids, the functions that log in to
// databases run in its named subnets with the named security groups (or
// the one the construct makes), the others stay outside; their roles may
// manage network interfaces only in those subnets and groups, and no role
// gets an AWS managed policy.
func TestVpcFromIds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      func(*testing.T) *synthesized
		groups []string // nil: the construct's own
	}{
		{"in a VPC", inVpc, vpcGroups},
		{"in a VPC, no security groups", inVpcNoGroups, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.s(t).doc
			sgs := d.ofType("AWS::EC2::SecurityGroup")
			if tc.groups == nil && len(sgs) != 1 || tc.groups != nil && len(sgs) != 0 {
				t.Fatalf("%d security groups in the stack", len(sgs))
			}
			var ownGroup string
			for id := range sgs {
				ownGroup = id
			}
			fns := d.functions(t)
			for name, id := range fns {
				props := d.Resources[id].Properties
				cfg, in := props["VpcConfig"].(map[string]any)
				if in != slices.Contains(targetFunctions, name) {
					t.Errorf("%s: in the VPC = %v", name, in)
				}
				role := ref(props["Role"])
				if mp := d.Resources[role].Properties["ManagedPolicyArns"]; mp != nil {
					t.Errorf("%s: managed policies %s", name, jsonString(mp))
				}
				var eni *statement
				for _, s := range d.statements(t, role) {
					if slices.Contains(s.actions(), "ec2:CreateNetworkInterface") {
						eni = &s
					}
				}
				if !in {
					if eni != nil {
						t.Errorf("%s: outside the VPC but may create network interfaces", name)
					}
					continue
				}
				if got := jsonString(cfg["SubnetIds"]); got != jsonString(vpcSubnets) {
					t.Errorf("%s: subnets %s, want %v", name, got, vpcSubnets)
				}
				wantGroups := jsonString(tc.groups)
				if tc.groups == nil {
					wantGroups = jsonString([]any{map[string]any{"Fn::GetAtt": []any{ownGroup, "GroupId"}}})
				}
				if got := jsonString(cfg["SecurityGroupIds"]); got != wantGroups {
					t.Errorf("%s: security groups %s, want %s", name, got, wantGroups)
				}
				if eni == nil {
					t.Fatalf("%s: its role may not create the network interfaces", name)
				}
				res := jsonString(eni.resources())
				for _, want := range append(slices.Clone(vpcSubnets), tc.groups...) {
					if !strings.Contains(res, want) {
						t.Errorf("%s: network interface resources %s lack %s", name, res, want)
					}
				}
				if !slices.Equal(slices.Sorted(slices.Values(eni.actions())), slices.Sorted(slices.Values(rotation.VpcNetworkInterfaceActions))) || slices.Contains(eni.resources(), any("*")) {
					t.Errorf("%s: network interface statement %s", name, jsonString(eni))
				}
			}
		})
	}
}

// TestVpcIds: what the construct and the app refuse.
func TestVpcIds(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    rotation.RotationProps
		want string // "" when valid
	}{
		{"none", rotation.RotationProps{}, ""},
		{"ids", rotation.RotationProps{VpcId: "vpc-0123456789abcdef0", VpcSubnetIds: vpcSubnets, VpcSecurityGroupIds: vpcGroups}, ""},
		{"short ids", rotation.RotationProps{VpcId: "vpc-01234567", VpcSubnetIds: []string{"subnet-01234567"}}, ""},
		{"no subnets", rotation.RotationProps{VpcId: "vpc-0123456789abcdef0"}, "no subnet ids"},
		{"subnets without a VPC", rotation.RotationProps{VpcSubnetIds: vpcSubnets}, "without a VPC id"},
		{"groups without a VPC", rotation.RotationProps{VpcSecurityGroupIds: vpcGroups}, "without a VPC id"},
		{"not a VPC id", rotation.RotationProps{VpcId: "my-vpc", VpcSubnetIds: vpcSubnets}, `"my-vpc" is not a VPC id`},
		{"a subnet id as VPC id", rotation.RotationProps{VpcId: "subnet-0123456789abcdef0", VpcSubnetIds: vpcSubnets}, "is not a VPC id"},
		{"not a subnet id", rotation.RotationProps{VpcId: "vpc-0123456789abcdef0", VpcSubnetIds: []string{"subnet-xyz"}}, "is not a subnet id"},
		{"not a security group id", rotation.RotationProps{VpcId: "vpc-0123456789abcdef0", VpcSubnetIds: vpcSubnets, VpcSecurityGroupIds: []string{"default"}}, "is not a security group id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.CheckVpcIds()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}
