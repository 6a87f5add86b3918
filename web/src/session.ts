// Who is logged in, and the CSRF token of that session. Kept in memory only: the session itself is
// an HttpOnly cookie the page cannot read; on load, GET /api/session tells who it belongs to.
import { reactive } from 'vue'
import type { Role, SessionAnswer, User } from './types'

export const session = reactive<{ user: User | null; csrf: string; expiresAt: string | null; ready: boolean }>({
  user: null,
  csrf: '',
  expiresAt: null,
  ready: false,
})

export function setSession(answer: SessionAnswer): void {
  session.user = { ...answer.user }
  session.csrf = answer.csrf_token
  session.expiresAt = answer.expires_at
}

export function clearSession(): void {
  session.user = null
  session.csrf = ''
  session.expiresAt = null
}

export type PageName = 'agent' | 'wallboard' | 'admin' | 'auditor'

/** The pages each role may open, in the order the header lists them. */
export const PAGES_BY_ROLE: Record<Role, PageName[]> = {
  agent: ['agent'],
  supervisor: ['wallboard', 'auditor'],
  admin: ['wallboard', 'admin'],
  auditor: ['auditor'],
  reviewer: [],
}

export function pagesFor(role: string | undefined | null): PageName[] {
  return (role && PAGES_BY_ROLE[role as Role]) || []
}

const HOME_BY_ROLE: Partial<Record<Role, PageName>> = {
  agent: 'agent',
  supervisor: 'wallboard',
  admin: 'admin',
  auditor: 'auditor',
}

/** Where a user lands after logging in. */
export function homeFor(role: string | undefined | null): string {
  const home = role ? HOME_BY_ROLE[role as Role] : undefined
  return home ? `/${home}` : '/home'
}
