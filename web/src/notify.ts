// Error and success messages. Texts are always passed to Element Plus as plain strings (never as
// HTML): a server text or a user's name can hold anything.
import { ElMessage } from 'element-plus'
import { ApiError } from './api'
import { t } from './i18n'

export function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403 && !e.message.includes('无权访问')) return `${t('forbidden')}：${e.message}`
    if (e.status === 429 && e.retryAfter) return `${e.message}（${t('login_retry_after', { s: e.retryAfter })}）`
    return e.message
  }
  if (e instanceof TypeError) return t('server_unreachable')
  if (e instanceof Error) return e.message
  return String(e)
}

/** Shows what went wrong; nothing for a log-in-again the user gave up (the page is leaving). */
export function showError(e: unknown): void {
  if (e instanceof ApiError && e.status === 401) return
  if (e instanceof DOMException && e.name === 'AbortError') return
  ElMessage({ type: 'error', message: errorText(e), showClose: true, duration: 6000, grouping: true })
}

export function showSuccess(message: string): void {
  ElMessage({ type: 'success', message, duration: 3000, grouping: true })
}

export function showWarning(message: string): void {
  ElMessage({ type: 'warning', message, duration: 4000, grouping: true })
}
