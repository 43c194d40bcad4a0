/**
 * The PostgreSQL fault-injection suite (test/support/archive-fault-suite.ts)
 * on the incoming/ path: the agent uploads into the incoming bucket and the
 * upload's event starts ingest (Validate, Promote, Record). Its faults go into
 * those steps and their events, so the path is pinned (WALVAULT_WAL_DIRECT=0)
 * whatever the default is.
 */
import { describeArchiveFaults } from "../support/archive-fault-suite.js";

describeArchiveFaults({
  label: "incoming/ path",
  env: { WALVAULT_WAL_DIRECT: "0" },
  workflow: "ingest",
  otherWorkflow: "wal-record",
  firstStep: "Validate",
  timesOutAfterWork: [
    { state: "Promote", rounds: 3 },
    { state: "Record", rounds: 2 },
  ],
  hangs: "Record",
  // The same upload event delivered again: ingest started with it once more.
  again: (input, arns) => {
    const event = (input as { event?: { id?: string } }).event;
    return event?.id ? { arn: arns.ingest, input: event, id: event.id } : undefined;
  },
});
