import { Stack, Validations } from 'aws-cdk-lib';
import * as chatbot from 'aws-cdk-lib/aws-chatbot';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** A Slack channel in a workspace authorized for AWS Chatbot in its console (a one-time step per account). */
export interface SlackChannel {
  readonly workspaceId: string;
  readonly channelId: string;
}

/** A Microsoft Teams channel of a team authorized for AWS Chatbot in its console (a one-time step per account). */
export interface TeamsChannel {
  readonly teamId: string;
  readonly tenantId: string;
  readonly channelId: string;
}

export interface ChatNotificationsProps {
  /** The topic whose messages (the alarms) the channels receive. */
  readonly topic: sns.ITopic;
  /**
   * Slack channel to post to.
   * @default - no Slack channel
   */
  readonly slack?: SlackChannel;
  /**
   * Microsoft Teams channel to post to.
   * @default - no Teams channel
   */
  readonly teams?: TeamsChannel;
  /**
   * Prefix of the channel configuration names.
   * @default - the stack name
   */
  readonly namePrefix?: string;
}

/**
 * AWS Chatbot channels that post the alarm topic's messages to Slack and/or Microsoft Teams. Chatbot acts with one
 * channel role that may only read alarms and render their charts, and every channel is capped by the
 * CloudWatchReadOnlyAccess guardrail, so nothing typed in the channel can change anything in the account. With no
 * channel configured, nothing is created.
 */
export class ChatNotifications extends Construct {
  /** The role Chatbot assumes for the channels; undefined without channels. */
  public readonly role?: iam.Role;
  /** The most any channel member can do through Chatbot, whatever role is used. */
  public readonly guardrailPolicy: iam.IManagedPolicy;
  public readonly slackChannel?: chatbot.SlackChannelConfiguration;
  public readonly teamsChannel?: chatbot.CfnMicrosoftTeamsChannelConfiguration;

  constructor(scope: Construct, id: string, props: ChatNotificationsProps) {
    super(scope, id);
    const prefix = props.namePrefix ?? Stack.of(this).stackName;
    this.guardrailPolicy = iam.ManagedPolicy.fromAwsManagedPolicyName('CloudWatchReadOnlyAccess');
    if (!props.slack && !props.teams) return;

    this.role = new iam.Role(this, 'Role', {
      // Only on behalf of this account's channel configurations (confused deputy).
      assumedBy: new iam.ServicePrincipal('chatbot.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
      }),
      description: 'audit-archiver: AWS Chatbot reads the alarms it posts',
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:GetMetricData', 'cloudwatch:GetMetricWidgetImage'],
        resources: ['*'],
      }),
    );
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Chatbot renders the alarm it posts: DescribeAlarms, GetMetricData and GetMetricWidgetImage support no ' +
        'resource scope. Read-only; the guardrail caps the channel at CloudWatch read access as well.',
    });

    if (props.slack) {
      this.slackChannel = new chatbot.SlackChannelConfiguration(this, 'Slack', {
        slackChannelConfigurationName: `${prefix}-alarms-slack`,
        slackWorkspaceId: props.slack.workspaceId,
        slackChannelId: props.slack.channelId,
        notificationTopics: [props.topic],
        role: this.role,
        guardrailPolicies: [this.guardrailPolicy],
        userRoleRequired: false,
      });
    }
    if (props.teams) {
      this.teamsChannel = new chatbot.CfnMicrosoftTeamsChannelConfiguration(this, 'Teams', {
        configurationName: `${prefix}-alarms-teams`,
        teamId: props.teams.teamId,
        teamsTenantId: props.teams.tenantId,
        teamsChannelId: props.teams.channelId,
        snsTopicArns: [props.topic.topicArn],
        iamRoleArn: this.role.roleArn,
        guardrailPolicies: [this.guardrailPolicy.managedPolicyArn],
        userRoleRequired: false,
      });
    }
  }
}
