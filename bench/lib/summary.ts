// The summary of one front over the interleaved rounds: written by run.ts into the result file,
// read back by report.ts.

export interface PerRound {
  round: number;
  requestsPerSec: number;
  ratio: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  failed: number;
  frontUsPerRequest: number;
  otherCores: number;
}

export interface FrontSummary {
  label: string;
  requestsPerSec: number;
  ratio: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Median over rounds of (this front's p99 - direct's p99 in the same round). */
  p99OverDirectMs: number;
  /** Medians of CPU µs per request spent by the front itself, and by the app processes. */
  frontUsPerRequest: number;
  appUsPerRequest: number;
  failed: number;
  perRound: PerRound[];
}
