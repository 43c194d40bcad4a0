/**
 * The PostgreSQL fault-injection suite (test/support/archive-fault-suite.ts)
 * on the direct WAL path: the agent writes each segment into the vault under
 * its content-addressed key and starts wal-record, whose ValidateRecord
 * verifies and records it (docs/wal.md, "Direct WAL"). Pinned
 * (WALVAULT_WAL_DIRECT=1) whatever the default is.
 */
import { describeArchiveFaults } from "../support/archive-fault-suite.js";

describeArchiveFaults({
  label: "direct WAL",
  env: { WALVAULT_WAL_DIRECT: "1" },
  workflow: "wal-record",
  otherWorkflow: "ingest",
  firstStep: "ValidateRecord",
  // Its one step does the work of Validate, Promote and Record: as many after-work timeouts as those two get.
  timesOutAfterWork: [{ state: "ValidateRecord", rounds: 5 }],
  hangs: "ValidateRecord",
  // The agent's StartExecution delivered twice (a retry after a lost answer): wal-record started again with the same request.
  again: (input, arns) => {
    const request = (input as { request?: { key?: string } }).request;
    return request?.key ? { arn: arns["wal-record"], input: request, id: request.key } : undefined;
  },
});
