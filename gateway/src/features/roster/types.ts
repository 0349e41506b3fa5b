/**
 * A roster member (issue 8): a person an agency's roster system (HR, a staffing tool, a SCIM
 * identity provider) lists, and the tags issued to them.
 *
 * Why a collection of its own rather than a `holderId` on Tag or users with role `responder`:
 * - tags keep opening doors exactly as before, through their unit (desired-state.ts); a member
 *   only records which tag uids were issued to whom, so removing the member can block exactly
 *   those. Nothing that reads tags changes, and no index is added to an existing collection
 *   (which would need a store migration);
 * - users are log-ins; most crew members never log in, and a roster import must not create
 *   accounts or passwords.
 * The member's id is derived from (agencyId, externalId), so two concurrent creates of one
 * roster id collide on the store's id check: externalId is unique per agency without a global
 * unique index.
 */
export interface RosterMember {
  /** `rm-` + a hash of agencyId and externalId (see memberId). */
  id: string;
  agencyId: string;
  /** The roster system's own id for the person; unique within the agency. */
  externalId: string;
  name: string;
  /** The unit the person rides with; a member with tags needs one (tags open doors through their unit). */
  unitId?: string;
  /** PROTOCOL TagUid (upper-case hex) of each tag issued to the person. */
  tagUids: string[];
  /** False: suspended (SCIM `active: false`): the member stays, the tags are blocked. */
  active: boolean;
  createdAt: number;
  updatedAt: number;
}
