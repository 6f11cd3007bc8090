package rotation

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// VpcNetworkInterfaceActions are what Lambda needs, with the function's
// role, to attach a function to a VPC, on the network interfaces it makes
// in the given subnets with the given security groups. They are granted
// here, scoped to those, instead of through the AWS managed policy
// AWSLambdaVPCAccessExecutionRole, which allows them on "*".
var VpcNetworkInterfaceActions = []string{
	"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
	"ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
}

// ec2DescribeNetworkInterfaces is the one VPC action with no resource-level
// permissions (Lambda checks its network interfaces with it).
const ec2DescribeNetworkInterfaces = "ec2:DescribeNetworkInterfaces"

const (
	nagDescribeNetworkInterfacesWhy = "DescribeNetworkInterfaces lists the account's network interfaces (Lambda checks the function's own), never a secret."
	nagNetworkInterfacesReason      = "Lambda creates a VPC function's network interfaces at run time and names them then, so their ARNs cannot be " +
		"named in a policy; the actions on network-interface/* are only those that attach the function (create, delete, assign and " +
		"unassign private addresses), and creating one is limited to the given subnets and security groups."
)

// vpcPlacement is where the functions that log in to targets run.
type vpcPlacement struct {
	vpc     awsec2.IVpc
	subnets *awsec2.SubnetSelection
	groups  []awsec2.ISecurityGroup
	// resources of VpcNetworkInterfaceActions: the interfaces, the subnets
	// and the security groups.
	resources []string
}

// vpc resolves the props' VPC (Vpc, or VpcId and its ids), or returns nil
// when there is none. It panics on ids that CheckVpcIds refuses.
func (r *Rotation) vpc(props *RotationProps) *vpcPlacement {
	if err := props.CheckVpcIds(); err != nil {
		panic("secretsaga: " + err.Error())
	}
	p := &vpcPlacement{vpc: props.Vpc, subnets: props.VpcSubnets, groups: props.SecurityGroups}
	switch {
	case props.VpcId != "":
		// Imported from its ids: no lookup (that needs an account), and
		// the subnets are named, so the VPC's own layout is never read.
		p.vpc = awsec2.Vpc_FromVpcAttributes(r.Construct, jsii.String("Vpc"), &awsec2.VpcAttributes{
			VpcId:             jsii.String(props.VpcId),
			AvailabilityZones: awscdk.Fn_GetAzs(nil),
		})
		var subnets []awsec2.ISubnet
		for i, id := range props.VpcSubnetIds {
			subnets = append(subnets, awsec2.Subnet_FromSubnetId(r.Construct, jsii.String(fmt.Sprintf("Subnet%d", i)), jsii.String(id)))
		}
		p.subnets = &awsec2.SubnetSelection{Subnets: &subnets}
		p.groups = nil
		for i, id := range props.VpcSecurityGroupIds {
			p.groups = append(p.groups, awsec2.SecurityGroup_FromSecurityGroupId(r.Construct, jsii.String(fmt.Sprintf("SecurityGroup%d", i)), jsii.String(id),
				&awsec2.SecurityGroupImportOptions{Mutable: jsii.Bool(false)}))
		}
	case props.Vpc == nil:
		return nil
	}
	if len(p.groups) == 0 {
		sg := awsec2.NewSecurityGroup(r.Construct, jsii.String("DatabaseClients"), &awsec2.SecurityGroupProps{
			Vpc:              p.vpc,
			Description:      jsii.String("secretsaga functions that log in to databases (rotation group " + r.RotationGroup + "); allow it in the database security groups"),
			AllowAllOutbound: jsii.Bool(true),
		})
		r.DatabaseClientSecurityGroup = sg
		p.groups = []awsec2.ISecurityGroup{sg}
	}
	stack := awscdk.Stack_Of(r.Construct)
	arn := func(resource string) string {
		return *stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ec2"), Resource: jsii.String(resource)})
	}
	p.resources = []string{arn("network-interface/*")}
	// Named subnets are read one by one: SelectSubnets hands Go every
	// field of its result, the subnets' availability zones included,
	// which subnets imported from an id do not have.
	var subnetIds []*string
	if p.subnets != nil && p.subnets.Subnets != nil {
		for _, sn := range *p.subnets.Subnets {
			subnetIds = append(subnetIds, sn.SubnetId())
		}
	} else {
		subnetIds = *p.vpc.SelectSubnets(p.subnets).SubnetIds
	}
	for _, id := range subnetIds {
		p.resources = append(p.resources, arn("subnet/"+*id))
	}
	for _, g := range p.groups {
		p.resources = append(p.resources, arn("security-group/"+*g.SecurityGroupId()))
	}
	return p
}

// allow grants role what Lambda needs to attach a function to the VPC.
func (p *vpcPlacement) allow(role awsiam.Role) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("VpcNetworkInterfaces"),
		Actions:   jsii.Strings(VpcNetworkInterfaceActions...),
		Resources: jsii.Strings(p.resources...),
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("VpcDescribeNetworkInterfaces"),
		Actions:   jsii.Strings(ec2DescribeNetworkInterfaces),
		Resources: jsii.Strings("*"),
	}))
}
