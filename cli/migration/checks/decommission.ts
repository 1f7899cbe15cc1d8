/**
 * `decommission`: manual. Removing the feature's code from Sync is a person's
 * call; it is recorded with `bifrost migrate complete <squad> <step> --by
 * <who> --evidence <link to the merged change>`.
 */
import { paramsSchema, type StepCheck } from '../step-check.ts';

export const decommissionCheck: StepCheck = {
  type: 'decommission',
  manual: true,
  describes: 'manual: the feature is removed from Sync; recorded with evidence',
  paramsSchema: paramsSchema({}),
  defaults: {},
  async run(ctx) {
    return {
      ok: false,
      summary: `manual step: record it with \`bifrost migrate complete ${ctx.squad.squad} ${ctx.step.id} --by <you> --evidence <link>\``,
      output: [],
    };
  },
};
