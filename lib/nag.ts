import { Stack, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct, type IConstruct } from 'constructs';

/**
 * Renders a (possibly tokenized) ARN the way cdk-nag names an IAM5 finding: `Fn::GetAtt` becomes `<Logical.Attr>`,
 * `Ref` becomes `<Logical>`, `Fn::Join` is joined and anything else is JSON. Acknowledgments then name the exact
 * resource pattern, so a new, unreviewed wildcard still fails the check.
 */
function nagResource(scope: IConstruct, arn: string): string {
  const visit = (node: unknown): string => {
    if (node === undefined) return '';
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/}/g, '>');
    const value = node as Record<string, unknown>;
    if (Array.isArray(value['Fn::Join'])) {
      const [delimiter, items] = value['Fn::Join'] as [string, unknown[]];
      return items.map(visit).join(delimiter);
    }
    if (value['Fn::Sub'] !== undefined) return visit(value['Fn::Sub']);
    if (Array.isArray(value['Fn::GetAtt'])) {
      const [resource, attribute] = value['Fn::GetAtt'] as [unknown, unknown];
      return `<${visit(resource)}.${visit(attribute)}>`;
    }
    if (value['Fn::ImportValue'] !== undefined) return visit(value['Fn::ImportValue']);
    if (value.Ref !== undefined) return `<${visit(value.Ref)}>`;
    return JSON.stringify(node);
  };
  return visit(Stack.of(scope).resolve(arn));
}

/**
 * Acknowledges AwsSolutions-IAM5 for exactly these wildcard resources on the grantee's principal, with the reason
 * written where the grant is made. Only constructs can carry acknowledgments; other principals are left alone.
 */
export function acknowledgeWildcardResources(
  grantee: iam.IGrantable,
  arns: readonly string[],
  reason: string,
): void {
  const principal = grantee.grantPrincipal;
  if (!Construct.isConstruct(principal)) return;
  for (const arn of arns) {
    const resource = nagResource(principal, arn);
    if (!resource.includes('*')) continue;
    Validations.of(principal).acknowledge({ id: `AwsSolutions-IAM5[Resource::${resource}]`, reason });
  }
}
