// The editable settings of a queue (cc_core/settings.py QueueSettings) with their ranges and units,
// shared by the queue table and its form; and priority tags as text ("vip=10, elderly=5").
import type { MessageKey } from './i18n'
import type { QueueStrategy } from './types'

export const STRATEGIES: QueueStrategy[] = ['longest_idle', 'least_occupied', 'round_robin', 'skills']

export type NumberKey =
  | 'ring_timeout'
  | 'wrapup'
  | 'max_missed_before_pause'
  | 'max_wait'
  | 'announce_every'
  | 'returning_window_hours'
  | 'returning_wait'
  | 'requested_wait'

export interface NumberField {
  key: NumberKey
  /** data-test="queue-form-{test}" */
  test: string
  label: MessageKey
  hint: MessageKey
  min: number
  max: number
  unit: MessageKey
  /** false: a decimal is allowed (hours) */
  integer: boolean
}

export const NUMBER_FIELDS: NumberField[] = [
  {
    key: 'ring_timeout',
    test: 'ring-timeout',
    label: 'queue_ring_timeout',
    hint: 'queue_ring_timeout_hint',
    min: 5,
    max: 120,
    unit: 'seconds',
    integer: true,
  },
  {
    key: 'wrapup',
    test: 'wrapup',
    label: 'queue_wrapup',
    hint: 'queue_wrapup_hint',
    min: 0,
    max: 600,
    unit: 'seconds',
    integer: true,
  },
  {
    key: 'max_missed_before_pause',
    test: 'max-missed',
    label: 'queue_max_missed',
    hint: 'queue_max_missed_hint',
    min: 1,
    max: 10,
    unit: 'unit_times',
    integer: true,
  },
  {
    key: 'max_wait',
    test: 'max-wait',
    label: 'queue_max_wait',
    hint: 'queue_max_wait_hint',
    min: 30,
    max: 3600,
    unit: 'seconds',
    integer: true,
  },
  {
    key: 'announce_every',
    test: 'announce-every',
    label: 'queue_announce_every',
    hint: 'queue_announce_every_hint',
    min: 15,
    max: 600,
    unit: 'seconds',
    integer: true,
  },
  {
    key: 'returning_window_hours',
    test: 'returning-window',
    label: 'queue_returning_window',
    hint: 'queue_returning_window_hint',
    min: 0,
    max: 2160,
    unit: 'unit_hours',
    integer: false,
  },
  {
    key: 'returning_wait',
    test: 'returning-wait',
    label: 'queue_returning_wait',
    hint: 'queue_returning_wait_hint',
    min: 0,
    max: 300,
    unit: 'seconds',
    integer: true,
  },
  {
    key: 'requested_wait',
    test: 'requested-wait',
    label: 'queue_requested_wait',
    hint: 'queue_requested_wait_hint',
    min: 0,
    max: 600,
    unit: 'seconds',
    integer: true,
  },
]

/** {"vip": 10, "elderly": 5} → "vip=10, elderly=5" */
export function tagsText(value: unknown): string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return ''
  return Object.entries(value as Record<string, unknown>)
    .map(([tag, boost]) => `${tag}=${String(boost)}`)
    .join(', ')
}

/** "vip=10, elderly=5" (also "vip:10" and Chinese commas) → {vip: 10, elderly: 5}; the part that
 * cannot be read instead. */
export function parseTags(text: string): { tags: Record<string, number> } | { bad: string } {
  const tags: Record<string, number> = {}
  for (const raw of text.split(/[,，、;；\n]/)) {
    const part = raw.trim()
    if (!part) continue
    const match = /^([^=:：\s]+)\s*[=:：]\s*([+-]?\d+)$/.exec(part)
    if (!match) return { bad: part }
    tags[match[1]] = Number(match[2])
  }
  return { tags }
}

export function sameTags(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => k in b && a[k] === b[k])
}
