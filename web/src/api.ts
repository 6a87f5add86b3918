// fetch() around the JSON API: the session cookie goes along (same origin), every state-changing
// request carries X-CSRF-Token, and a 401 while someone is logged in opens the log-in-again dialog
// over the current page (nothing is navigated away or reset) and the request is sent once more
// after that.
import { reactive } from 'vue'
import { session, setSession } from './session'
import type { SessionAnswer } from './types'

export class ApiError extends Error {
  readonly status: number
  readonly data: Record<string, unknown>
  readonly retryAfter: number | null

  constructor(status: number, message: string, data: Record<string, unknown> = {}, retryAfter: number | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.data = data
    this.retryAfter = retryAfter
  }

  get forbidden(): boolean {
    return this.status === 403
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

// ---- logging in again without leaving the page -------------------------------------------------

export const relogin = reactive<{ open: boolean; message: string; username: string }>({
  open: false,
  message: '',
  username: '',
})

let pending: Promise<void> | null = null
let settle: { resolve: () => void; reject: (e: Error) => void } | null = null

/** Show the log-in-again dialog (once, however many requests or sockets need it) and resolve when
 * the user has logged in again; rejects if they give up and go to the log-in page. */
export function needRelogin(message = ''): Promise<void> {
  if (!pending) {
    pending = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject }
    })
    // Nobody may be waiting on it (a WebSocket's expiry): do not report an unhandled rejection.
    pending.catch(() => undefined)
    relogin.username = session.user?.username ?? ''
    relogin.message = message
    relogin.open = true
  } else if (message && !relogin.message) {
    relogin.message = message
  }
  return pending
}

export function reloginPending(): boolean {
  return pending !== null
}

/** Called by the dialog once POST /api/login succeeded. */
export function reloginDone(): void {
  relogin.open = false
  const s = settle
  pending = null
  settle = null
  s?.resolve()
}

/** Called by the dialog when the user gives up (goes to the log-in page). */
export function reloginAbandon(): void {
  relogin.open = false
  const s = settle
  pending = null
  settle = null
  s?.reject(new ApiError(401, '登录已过期 (session expired)', { expired: true }))
}

// ---- requests ----------------------------------------------------------------------------------

export interface RequestOptions {
  /** Do not open the log-in-again dialog on 401 (log in, session check, log out). */
  noRelogin?: boolean
  signal?: AbortSignal
}

async function readBody(res: Response): Promise<unknown> {
  const type = res.headers.get('Content-Type') ?? ''
  if (res.status === 204) return null
  if (type.includes('json')) {
    try {
      return await res.json()
    } catch {
      return null
    }
  }
  const text = await res.text()
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function errorFrom(res: Response, body: unknown): ApiError {
  const data = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {}
  let message = typeof data.error === 'string' && data.error ? data.error : ''
  if (!message) {
    if (typeof body === 'string' && body.trim() && body.length < 300 && !body.trimStart().startsWith('<')) {
      message = body.trim()
    } else {
      message = `${res.status} ${res.statusText || ''}`.trim()
    }
  }
  const retry = Number(res.headers.get('Retry-After'))
  return new ApiError(res.status, message, data, Number.isFinite(retry) && retry > 0 ? retry : null)
}

export async function request<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  const send = (): Promise<Response> => {
    const headers: Record<string, string> = { Accept: 'application/json' }
    let payload: BodyInit | undefined
    if (body instanceof FormData) {
      payload = body
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json'
      payload = JSON.stringify(body)
    }
    if (UNSAFE.has(method) && session.csrf) headers['X-CSRF-Token'] = session.csrf
    return fetch(path, { method, headers, body: payload, credentials: 'same-origin', signal: options.signal })
  }

  let res = await send()
  if (res.status === 401 && !options.noRelogin && session.user) {
    const first = errorFrom(res, await readBody(res))
    await needRelogin(first.message) // rejects if the user gives up
    res = await send() // once, with the new session's CSRF token
  }
  const data = await readBody(res)
  if (!res.ok) throw errorFrom(res, data)
  return data as T
}

export const api = {
  get: <T = unknown>(path: string, options?: RequestOptions) => request<T>('GET', path, undefined, options),
  post: <T = unknown>(path: string, body?: unknown, options?: RequestOptions) =>
    request<T>('POST', path, body ?? {}, options),
  put: <T = unknown>(path: string, body?: unknown, options?: RequestOptions) => request<T>('PUT', path, body ?? {}, options),
  del: <T = unknown>(path: string, body?: unknown, options?: RequestOptions) =>
    request<T>('DELETE', path, body, options),
}

// ---- the session itself --------------------------------------------------------------------------

export async function login(username: string, password: string): Promise<SessionAnswer> {
  const answer = await request<SessionAnswer>('POST', '/api/login', { username, password }, { noRelogin: true })
  setSession(answer)
  return answer
}

/** GET /api/session on page load: who the cookie belongs to, or null (401). */
export async function restoreSession(): Promise<SessionAnswer | null> {
  try {
    const answer = await request<SessionAnswer>('GET', '/api/session', undefined, { noRelogin: true })
    setSession(answer)
    return answer
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null
    throw e
  }
}

export function pathPart(value: string | number): string {
  return encodeURIComponent(String(value))
}
