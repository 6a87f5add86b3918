// The shapes of the JSON API (docs/web-api.md). Fields the server may leave out are optional.

export type Role = 'agent' | 'supervisor' | 'admin' | 'reviewer' | 'auditor'

export interface User {
  username: string
  name: string
  role: Role
  agent_id: string | null
}

export interface SessionAnswer {
  user: User
  csrf_token: string
  expires_at: string
}

export type AgentStateCode = 'offline' | 'available' | 'ringing' | 'on_call' | 'wrap_up' | 'paused'

export interface AgentInfo {
  id: string
  name?: string | null
  state: AgentStateCode | string
  since?: string | null
  extension?: string | null
  pause_reason?: string | null
  wrapup_until?: string | null
  time_in_state_s?: number | null
}

export interface IvrStep {
  at?: string
  flow?: string
  node: string
  label?: string | null
}

export interface HistoryEntry {
  uniqueid: string
  arrived_at: string
  agent_id: string | null
  summary: string | null
  survey_score: number | null
  status?: string | null
}

export interface Room {
  state: 'held' | 'consulting' | 'conference' | string
  third: string | null
}

export interface CurrentCall {
  uniqueid: string
  number: string | null
  queue: string | null
  arrived_at?: string | null
  connected_at?: string | null
  ringing: boolean
  ivr_path?: IvrStep[]
  history?: HistoryEntry[]
  room?: Room | null
}

export interface Wrapup {
  call: string
  number?: string | null
  until: string
  summary?: string | null
  extended?: boolean
}

export interface Callback {
  id: number | string
  number: string
  reason?: string | null
  status?: string | null
  attempts?: number | null
  created_at?: string | null
  next_attempt_at?: string | null
}

export interface AgentFigures {
  answered?: number | null
  talk_s_avg?: number | null
  survey_avg?: number | null
  survey_count?: number | null
  paused_s?: number | null
  callbacks_reached?: number | null
}

export interface AgentSnapshot {
  agent: AgentInfo
  call: CurrentCall | null
  wrapup: Wrapup | null
  callbacks?: Callback[]
  figures?: AgentFigures
  server_time?: string
}

export interface QueueCaller {
  caller: string
  waited_s: number
  state?: string
  agent?: string | null
}

export interface QueueLive {
  name: string
  waiting: number
  longest_wait_s: number | null
  callers?: QueueCaller[]
}

export interface TodayFigures {
  offered?: number
  answered?: number
  abandoned?: number
  // Of today's offered calls: in a queue now, and answered and still going on (issue 11).
  waiting?: number
  in_progress?: number
  called_back?: number
  answered_rate?: number | null
  callback_rate?: number | null
  total_rate?: number | null
  avg_wait_s?: number | null
  avg_talk_s?: number | null
  survey_avg?: number | null
  survey_count?: number | null
}

export interface WallboardSnapshot {
  queues: QueueLive[]
  agents: AgentInfo[]
  today: TodayFigures
  server_time?: string
}

export interface Problem {
  file?: string | null
  line?: number | null
  message: string
}

export interface FlowItem {
  name: string
  file?: string
  version?: number | string | null
  loaded?: boolean
}

export interface FlowList {
  flows: FlowItem[]
  problems?: (Problem | string)[]
}

export interface FlowText {
  name: string
  file?: string
  yaml: string
}

/** GET /api/admin/flows/{name} and /api/admin/calendars/{name}. */
export type YamlText = FlowText

export interface ValidateAnswer {
  ok: boolean
  problems?: (Problem | string)[]
  warnings?: (Problem | string)[]
}

export interface PublishAnswer {
  ok: boolean
  version?: number | string | null
  name?: string
  problems?: (Problem | string)[]
  warnings?: (Problem | string)[]
}

// cc_core/web/admin.py list_calendars, put_calendar
export interface CalendarItem {
  name: string
  file?: string
  loaded?: boolean
}

export interface CalendarList {
  calendars: CalendarItem[]
  warnings?: (Problem | string)[]
}

// cc_core/web/admin.py list_agents (hotline.toml [[agents]])
export interface AgentConfig {
  id: string
  name?: string | null
  skills?: Record<string, number> | string[] | null
  team?: string | null
  tags?: string[] | null
  queues?: string[] | null
  chat_capacity?: number | null
}

/** The editable fields of an agent: the body of PUT /api/admin/agents/{id} (any of them) and,
 * with `id`, of POST /api/admin/agents (cc_core/acd/roster.py AGENT_FIELDS). */
export interface AgentFields {
  name?: string
  skills?: Record<string, number>
  team?: string
  tags?: string[]
  queues?: string[]
  chat_capacity?: number
}

export type QueueStrategy = 'longest_idle' | 'least_occupied' | 'round_robin' | 'skills'

// cc_core/web/admin.py list_queues (cc_core/settings.py QueueSettings, hotline.toml [[queues]])
export interface QueueConfigRow {
  name: string
  title?: string | null
  strategy?: QueueStrategy | string | null
  ring_timeout?: number | null
  wrapup?: number | null
  max_missed_before_pause?: number | null
  max_wait?: number | null
  returning_window_hours?: number | null
  returning_wait?: number | null
  requested_wait?: number | null
  announce_every?: number | null
  priority_tags?: Record<string, number> | null
}

/** The body of PUT /api/admin/queues/{name}: the changed fields only. */
export type QueueFields = Partial<Omit<QueueConfigRow, 'name'>>

/** A queue as the agent form offers it (a checkbox per queue). */
export interface QueueOption {
  name: string
  title: string
}

// POST /api/admin/agents/{id}/sip-password and POST /api/admin/agents (201): shown once, never stored
export interface SipPasswordAnswer {
  agent: string
  username: string
  password: string
  sip_port: number | string | null
}

// cc_core/calls/search.py RecordingHit
export interface RecordingHit {
  id: number
  uniqueid: string
  leg: string
  agent_id: string | null
  started_at: string
  duration_s: number | null
  caller_number: string | null
  dialed_number: string | null
  queue: string | null
  survey_score: number | null
  summary: string | null
}

// cc_core/archive/views.py ArchivedRecording
export interface RecordingDetails {
  id: number
  call_id: number | null
  uniqueid: string
  agent_id: string | null
  leg: string
  started_at: string
  status: string
  state: string | null
  day: string | null
  path: string | null
  sha256: string | null
  size_bytes: number | null
  duration_s: number | null
  format: string | null
  error: string | null
  archived_at: string | null
  backed_up_at: string | null
  manifest_id: number | null
  hold_at: string | null
  hold_by: string | null
  hold_reason: string | null
  purged_at: string | null
}

// cc_core/auth/store.py AuditView
export interface AuditEntry {
  id: number
  at: string
  actor: string
  role: string
  action: string
  target: string
  ip: string
  allowed: boolean
  detail: Record<string, unknown>
}
