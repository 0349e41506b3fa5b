/**
 * Roster sync over HTTP (issue 8). Admin only (there is no agency-admin role; DESIGN §7):
 * - `POST /api/v1/agencies/{id}/roster?mode=sync|merge[&dryRun=true]`, body `text/csv` (csv.ts
 *   documents the columns; at most 1 MB): the plan, applied unless `dryRun`. A file with any bad
 *   line changes nothing and answers 422 `policy-violation` with `details.errors` [{line, field, message}].
 * - `GET /api/v1/agencies/{id}/roster`: the agency's members.
 * - SCIM 2.0 under `/api/v1/agencies/{id}/scim/v2` (scim.ts).
 */
import { Type } from '@sinclair/typebox';
import { AppError, type JsonValue } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { Id } from '../admin/common.js';
import { parseRosterCsv } from './csv.js';
import { actorOf, mustBeAgency, type RosterRouteDeps } from './common.js';
import { scimRoutes } from './scim.js';

const LineErrorSchema = Type.Object({ line: Type.Optional(Type.Integer()), field: Type.Optional(Type.String()), message: Type.String() }, { additionalProperties: false });
const Strings = Type.Array(Type.String());
export const PlanSchema = Type.Object(
  {
    agencyId: Type.String(),
    mode: Type.Union([Type.Literal('sync'), Type.Literal('merge')]),
    applied: Type.Boolean({ description: 'False for a dry run.' }),
    counts: Type.Object({ create: Type.Integer(), update: Type.Integer(), remove: Type.Integer(), unchanged: Type.Integer() }, { additionalProperties: false }),
    unitsToCreate: Strings,
    tagsToCreate: Strings,
    tagsToBlock: Strings,
    rows: Type.Array(
      Type.Object(
        {
          line: Type.Optional(Type.Integer()),
          externalId: Type.String(),
          name: Type.String(),
          action: Type.Union([Type.Literal('create'), Type.Literal('update'), Type.Literal('remove'), Type.Literal('unchanged')]),
          unitCallSign: Type.Optional(Type.String()),
          tagUids: Strings,
          active: Type.Boolean(),
          blockTagUids: Strings,
          notes: Strings,
        },
        { additionalProperties: false },
      ),
    ),
    errors: Type.Array(LineErrorSchema),
  },
  { additionalProperties: false },
);

const MemberSchema = Type.Object(
  {
    id: Type.String(),
    agencyId: Type.String(),
    externalId: Type.String(),
    name: Type.String(),
    unitId: Type.Optional(Type.String()),
    tagUids: Strings,
    active: Type.Boolean(),
    createdAt: Type.Integer(),
    updatedAt: Type.Integer(),
  },
  { additionalProperties: false },
);

export function rosterRoutes(deps: RosterRouteDeps): RouteDef[] {
  const { store, roster } = deps;
  const tags = ['roster'];
  return [
    route({
      method: 'post',
      path: '/api/v1/agencies/{id}/roster',
      summary: "Import an agency's roster from CSV",
      description:
        'Columns (header line, any order): `externalId` (required), `name` (required), `unitCallSign` (units are created when missing; required with tags), `tagUids` (hex, several separated by `;`). ' +
        '`mode=sync`: the file is the whole roster, members missing from it are removed and their tags blocked everywhere; `mode=merge`: add and update only. ' +
        '`dryRun=true` answers the plan, with every bad line in `errors`, and changes nothing. A file with any bad line changes nothing: 422 with `details.errors` [{line, field, message}].',
      tags,
      auth: ['admin'],
      params: Type.Object({ id: Id }),
      query: Type.Object({ mode: Type.Union([Type.Literal('sync'), Type.Literal('merge')]), dryRun: Type.Optional(Type.Boolean({ default: false })) }),
      bodyType: 'csv',
      body: Type.String({ description: 'text/csv, UTF-8 (a BOM is fine), CRLF or LF' }),
      responses: { 200: PlanSchema },
      errors: ['not-found', 'conflict', 'policy-violation', 'payload-too-large'],
      handler: async ({ params, query, body, principal }) => {
        await mustBeAgency(store, params.id);
        const parsed = parseRosterCsv(body);
        const invalid = (errors: readonly unknown[]): AppError =>
          AppError.policy(`the roster has ${errors.length} bad line${errors.length === 1 ? '' : 's'}; nothing was changed`, { errors: errors as JsonValue });
        if (query.dryRun) {
          // A preview shows every problem with the plan of the good lines (a file with errors is never applied).
          // With bad lines, nobody is planned for removal: a bad line may be a member to keep.
          const plan = await roster.plan(params.id, parsed.errors.length > 0 ? 'merge' : query.mode, parsed.members);
          const errors = [...parsed.errors, ...plan.errors].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
          return { ...plan, mode: query.mode, errors, applied: false };
        }
        if (parsed.errors.length > 0) throw invalid(parsed.errors);
        const plan = await roster.apply(params.id, query.mode, parsed.members, actorOf(principal));
        if (plan.errors.length > 0) throw invalid(plan.errors);
        return { ...plan, applied: true };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/agencies/{id}/roster',
      summary: "An agency's roster members",
      tags,
      auth: ['admin'],
      params: Type.Object({ id: Id }),
      responses: { 200: Type.Object({ items: Type.Array(MemberSchema) }, { additionalProperties: false }) },
      errors: ['not-found'],
      handler: async ({ params }) => {
        await mustBeAgency(store, params.id);
        return { items: await roster.members(params.id) };
      },
    }),
    ...scimRoutes(deps),
  ];
}
