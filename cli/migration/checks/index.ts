/** The registry of step checks: one per check type a playbook step may name. */
import type { CheckType, StepCheck } from '../step-check.ts';
import { inventoryCheck } from './inventory.ts';
import { registerServiceCheck } from './register-service.ts';
import { dualPublishCheck } from './dual-publish.ts';
import { subscribeHeadersCheck } from './subscribe-headers.ts';
import { routeParityCheck } from './route-parity.ts';
import { canaryCheck } from './canary.ts';
import { cutoverCheck } from './cutover.ts';
import { decommissionCheck } from './decommission.ts';

export const stepChecks: Record<CheckType, StepCheck> = {
  inventory: inventoryCheck,
  'register-service': registerServiceCheck,
  'dual-publish': dualPublishCheck,
  'subscribe-headers': subscribeHeadersCheck,
  'route-parity': routeParityCheck,
  canary: canaryCheck,
  cutover: cutoverCheck,
  decommission: decommissionCheck,
};
