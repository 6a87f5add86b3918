// The session check at page load: GET /api/session once, before the first route is decided.
import { restoreSession } from './api'
import { session } from './session'

export const bootError: { value: unknown } = { value: null }

export const sessionReady: Promise<void> = restoreSession()
  .then(() => undefined)
  .catch((e: unknown) => {
    bootError.value = e // the server cannot be reached: the log-in page says so
  })
  .finally(() => {
    session.ready = true
  })
