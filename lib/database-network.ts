import { Fn, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import type { DatabaseNetworkProps } from './archiver-function.js';

export interface DatabaseNetworkAttributes {
  /** The VPC the databases are in (`aws.vpc.vpcId`). */
  readonly vpcId: string;
  /**
   * Private subnets for the functions' network interfaces. They need a route to S3, DynamoDB and Secrets Manager:
   * a NAT gateway, or VPC endpoints (gateway endpoints for S3 and DynamoDB, an interface endpoint for Secrets Manager).
   */
  readonly subnetIds: readonly string[];
  /** Security groups of the functions; the databases' groups must admit them on the database port. */
  readonly securityGroupIds: readonly string[];
}

/**
 * The existing network the database functions are placed in, imported by id from the config so synthesis needs no
 * AWS account (no `Vpc.fromLookup`). The security groups are imported immutable: the stack never adds rules to
 * groups it does not own.
 */
export class DatabaseNetwork extends Construct {
  public readonly vpc: ec2.IVpc;
  public readonly subnets: readonly ec2.ISubnet[];
  public readonly securityGroups: readonly ec2.ISecurityGroup[];

  constructor(scope: Construct, id: string, props: DatabaseNetworkAttributes) {
    super(scope, id);
    this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: props.vpcId,
      availabilityZones: Fn.getAzs(),
    });
    Validations.of(this.vpc).acknowledge({
      id: 'Annotation::@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones',
      reason: 'Nothing selects subnets of this VPC by zone or type: the functions name their subnets by id.',
    });
    this.subnets = props.subnetIds.map((subnetId, i) => {
      const subnet = ec2.Subnet.fromSubnetId(this, `Subnet${i}`, subnetId);
      Validations.of(subnet).acknowledge({
        id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
        reason:
          'Only the subnet id is used (Lambda VpcConfig); no route or endpoint is added to its route table.',
      });
      return subnet;
    });
    this.securityGroups = props.securityGroupIds.map((groupId, i) =>
      ec2.SecurityGroup.fromSecurityGroupId(this, `SecurityGroup${i}`, groupId, { mutable: false }),
    );
  }

  /** The placement the database functions take. */
  public get placement(): DatabaseNetworkProps {
    return {
      vpc: this.vpc,
      vpcSubnets: { subnets: [...this.subnets] },
      securityGroups: [...this.securityGroups],
    };
  }
}
