// Live data for a page: the /api/ws WebSocket, and polling the same answer over HTTP every 2 s
// while the socket is not open (it reconnects with backoff in the meantime). A socket closed with
// 4401 or an {"type": "expired"} message asks the server whether the page's session still holds:
// the log-in-again dialog opens only when it does not.
import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'
import { ApiError, api, reloginPending } from './api'

export interface Live {
  /** true while the WebSocket is open */
  connected: Ref<boolean>
  /** the last error of the HTTP fallback (null when it worked or is not used) */
  error: Ref<ApiError | Error | null>
  /** fetch the HTTP answer now (after an action, when the socket is down) */
  refresh: () => Promise<void>
}

const POLL_MS = 2000
const BACKOFF_MIN_MS = 1000
const BACKOFF_MAX_MS = 30000

export function wsUrl(): string {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${proto}//${window.location.host}/api/ws`
}

export function useLive<T>(kind: 'agent' | 'wallboard', pollPath: string, apply: (data: T) => void): Live {
  const connected = ref(false)
  const error = ref<ApiError | Error | null>(null)
  let socket: WebSocket | null = null
  let stopped = false
  let backoff = BACKOFF_MIN_MS
  let reconnectTimer: number | undefined
  let pollTimer: number | undefined
  let polling = false
  let lastPush = 0 // Date.now() of the last message from the socket
  let expiredSeen = false

  async function refresh(): Promise<void> {
    if (polling || stopped) return
    polling = true
    const started = Date.now()
    try {
      const data = await api.get<T>(pollPath)
      error.value = null
      // A message from the socket after this request started is newer: keep it.
      if (!stopped && lastPush < started) apply(data)
    } catch (e) {
      error.value = e instanceof Error ? e : new Error(String(e))
    } finally {
      polling = false
    }
  }

  function startPolling(): void {
    if (pollTimer !== undefined || stopped) return
    pollTimer = window.setInterval(() => {
      if (!connected.value && !reloginPending()) void refresh()
    }, POLL_MS)
  }

  function stopPolling(): void {
    if (pollTimer !== undefined) window.clearInterval(pollTimer)
    pollTimer = undefined
  }

  function scheduleReconnect(): void {
    if (stopped || reconnectTimer !== undefined) return
    const delay = backoff + Math.random() * 300
    backoff = Math.min(BACKOFF_MAX_MS, backoff * 2)
    reconnectTimer = window.setTimeout(() => {
      reconnectTimer = undefined
      if (reloginPending()) scheduleReconnect()
      else connect()
    }, delay)
  }

  async function expired(): Promise<void> {
    stopPolling()
    // The socket's session ended, but the page may hold a newer one: another request met the
    // expiry first and the user logged in again while this socket, opened with the old cookie,
    // stayed open. So ask over HTTP: a 401 there opens the log-in-again dialog (api.ts) and
    // retries; an answer means the session is fine and only the socket was old.
    try {
      const data = await api.get<T>(pollPath)
      if (stopped) return
      error.value = null
      apply(data)
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return // the user went to the log-in page
      error.value = e instanceof Error ? e : new Error(String(e))
    }
    if (stopped) return
    backoff = BACKOFF_MIN_MS
    startPolling()
    connect()
  }

  function connect(): void {
    if (stopped || socket) return
    expiredSeen = false
    let ws: WebSocket
    try {
      ws = new WebSocket(wsUrl())
    } catch {
      startPolling()
      scheduleReconnect()
      return
    }
    socket = ws
    ws.onopen = () => {
      if (socket !== ws) return
      connected.value = true
      error.value = null
      backoff = BACKOFF_MIN_MS
      stopPolling()
    }
    ws.onmessage = (event: MessageEvent) => {
      if (socket !== ws || typeof event.data !== 'string') return
      let message: { type?: string; data?: unknown }
      try {
        message = JSON.parse(event.data)
      } catch {
        return
      }
      if (message.type === kind && message.data) {
        lastPush = Date.now()
        apply(message.data as T)
      } else if (message.type === 'expired') {
        expiredSeen = true
      }
    }
    ws.onclose = (event: CloseEvent) => {
      if (socket !== ws) return
      socket = null
      connected.value = false
      if (stopped) return
      if (event.code === 4401 || expiredSeen) {
        void expired()
      } else {
        startPolling()
        scheduleReconnect()
      }
    }
    ws.onerror = () => {
      // onclose follows and decides what to do
    }
  }

  onMounted(() => {
    void refresh()
    connect()
    // Until the socket has opened, poll: if it never opens, the page still moves.
    window.setTimeout(() => {
      if (!connected.value && !stopped) startPolling()
    }, POLL_MS)
  })

  onBeforeUnmount(() => {
    stopped = true
    stopPolling()
    if (reconnectTimer !== undefined) window.clearTimeout(reconnectTimer)
    const ws = socket
    socket = null
    if (ws) {
      ws.onclose = null
      ws.close(1000)
    }
  })

  return { connected, error, refresh }
}
