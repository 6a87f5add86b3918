// Times, durations and numbers as the pages show them, and one clock that ticks for all of them.
import { ref } from 'vue'

/** Milliseconds since the epoch of an ISO time from the server (microseconds allowed; a time
 * without a zone is taken as UTC, which is what the controller keeps). NaN if unreadable. */
export function parseTime(text: string | null | undefined): number {
  if (!text) return NaN
  let s = String(text).trim().replace(' ', 'T')
  s = s.replace(/(\.\d{3})\d+/, '$1')
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s)) s += 'Z'
  return Date.parse(s)
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0')
}

/** 2024-05-06 09:30:12 in the browser's time zone (the office PCs are in Beijing). */
export function fmtDateTime(text: string | null | undefined): string {
  const t = parseTime(text)
  if (Number.isNaN(t)) return text ? String(text) : '—'
  const d = new Date(t)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

export function fmtTime(text: string | null | undefined): string {
  const t = parseTime(text)
  if (Number.isNaN(t)) return '—'
  const d = new Date(t)
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** mm:ss, or h:mm:ss from an hour on. */
export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—'
  const total = Math.max(0, Math.floor(seconds))
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`
}

/** A rate between 0 and 1 as a percentage with one decimal. */
export function fmtPercent(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—'
  return `${(rate * 100).toFixed(1)}%`
}

export function fmtNumber(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return digits ? value.toFixed(digits) : String(Math.round(value))
}

export function show(value: unknown): string {
  if (value === null || value === undefined || value === '') return '—'
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

/** The one clock all "time in state" and countdown displays read; ticks twice a second. */
export const now = ref(Date.now())

/** The current time for a computed that should tick: depends on {@link now}, reads the real clock
 * (the tick may be up to half a second old, which would put a countdown a second off). */
export function clockNow(): number {
  return Math.max(now.value, Date.now())
}
let ticking = false
export function startClock(): void {
  if (ticking) return
  ticking = true
  window.setInterval(() => {
    now.value = Date.now()
  }, 500)
}
