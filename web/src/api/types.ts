// The REST API's shapes (docs/api.md), as the server answers them.

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
  refresh_expires_in: number;
}

export interface Company {
  id: number;
  name: string;
  domain: string;
  /** ISO 3166 code of the company's default country ("BE"). */
  country: string;
  language: string;
}

export interface Me {
  id: number;
  name: string;
  extension: string;
  email: string;
  role: string;
  company: Company;
}

export type LineState = "offline" | "available" | "ringing" | "in call" | "on hold";

export interface Contact {
  id: number;
  name: string;
  extension: string;
  email: string;
  numbers: string[];
  status: string;
  status_name: string;
  line_state: LineState;
}

export type Behaviour = "ring" | "voicemail" | "forward" | "busy";

export interface Status {
  key: string;
  name: string;
  colour: string | null;
  behaviour: Behaviour;
  forward_to: string | null;
  pause_acd: boolean;
}

export interface Party {
  number: string;
  name: string;
}

export interface LiveCall {
  id: string;
  direction: "internal" | "inbound" | "outbound";
  incoming: boolean;
  other: Party;
  state: "ringing" | "talking" | "on hold" | "held" | "conference";
  answered_at: string | null;
  recording: boolean;
  /** When the recording started (it stops by itself 5 minutes later); null if none. */
  recording_since: string | null;
  /** From the parties' RTCP (F9); null until measured. */
  quality: Quality | null;
  participants: Party[];
}

export interface Quality {
  mos: number;
  loss_percent: number;
  jitter_ms: number;
  rtt_ms: number | null;
}

export interface Recording {
  id: number;
  duration_ms: number;
  started_at: string;
}

export interface LogEntry {
  id: number;
  direction: "incoming" | "outgoing";
  other: Party;
  started_at: string;
  answered_at: string | null;
  ended_at: string | null;
  outcome: string | null;
  missed: boolean;
  recordings: Recording[];
}

export type LogFilter = "all" | "missed" | "recordings";

export interface VoicemailMessage {
  id: number;
  caller: Party;
  created_at: string;
  duration_ms: number;
  new: boolean;
  group_id: number | null;
}

export interface Group {
  id: number;
  name: string;
  extension: string;
  new_messages: number;
  old_messages: number;
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** A message of the event stream (WebSocket /api/v1/events). */
export interface LiveEvent {
  type: string;
  sequence?: number;
  timestamp?: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
}
