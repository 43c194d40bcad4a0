/**
 * Reading synthesized CloudFormation in the infra tests: values rendered as
 * one string, the statements that apply to a role, and the state machine
 * definition CloudFormation will deploy.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CfnElement, Stack } from "aws-cdk-lib";
import type { Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";

export interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}

/** A CloudFormation value as one string: Fn::Join concatenated, GetAtt as <Id.Attr>, Ref as <Id>. */
export function render(value: unknown): string {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if ("Fn::Join" in o) {
      const [sep, parts] = o["Fn::Join"] as [string, unknown[]];
      return parts.map(render).join(sep);
    }
    if ("Fn::GetAtt" in o) {
      const [id, attr] = o["Fn::GetAtt"] as [string, string];
      return `<${id}.${attr}>`;
    }
    if ("Ref" in o) return `<${String(o.Ref)}>`;
  }
  return JSON.stringify(value);
}

export const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnElement);
}

/** Every statement that applies to a role: its inline policies plus every AWS::IAM::Policy attached to it. */
export function roleStatements(template: Template, roleId: string): Statement[] {
  const resources = template.toJSON().Resources as Record<string, CfnResource>;
  const role = resources[roleId];
  if (!role) throw new Error(`no resource ${roleId}`);
  const inline = list(role.Properties?.Policies as { PolicyDocument: { Statement: Statement[] } }[] | undefined);
  const attached = Object.values(resources).filter(
    (r) => r.Type === "AWS::IAM::Policy" && list(r.Properties?.Roles as unknown[]).some((x) => render(x) === `<${roleId}>`),
  );
  return [
    ...inline.flatMap((p) => p.PolicyDocument.Statement),
    ...attached.flatMap((p) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement),
  ];
}

/**
 * The definition CloudFormation will deploy for a state machine: the
 * DefinitionString, or the asset file behind DefinitionS3Location (in the
 * cloud assembly `assemblyDir`), with the substitutions applied.
 */
export function deployedDefinition(machine: CfnResource, assemblyDir: string): string {
  const substitutions = (machine.Properties?.DefinitionSubstitutions ?? {}) as Record<string, unknown>;
  const location = machine.Properties?.DefinitionS3Location as { Key: string } | undefined;
  let definition = location
    ? readFileSync(join(assemblyDir, `asset.${location.Key}`), "utf8")
    : render(machine.Properties?.DefinitionString);
  for (const [name, value] of Object.entries(substitutions)) definition = definition.split(`\${${name}}`).join(render(value));
  return definition;
}
